"""Users, password hashes, signed tokens, roles, and the one ownership check every route uses.

Passwords are stored only as scrypt hashes (hashlib.scrypt, RFC 7914) with a per-user random
salt; the parameters travel inside the stored string so they can be raised later without
invalidating old hashes. Tokens are stateless: `base64url(payload) "." base64url(HMAC-SHA256)`,
where the payload is `v1:<user_id>:<role>:<expires_at>:<username>`; the signature is compared in
constant time and expiry is checked against an injected clock. See THREAT_MODEL.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import orjson

from engine.codes import ResultCode
from gateway.errors import Rejected

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 8 * 3600
"""Default token lifetime: one trading day; a client logs in again afterwards."""

SECRET_BYTES = 32
VERIFIED_KEPT = 10_000
"""Verified tokens remembered (all forgotten at once beyond it: they verify again)."""


class Role(IntEnum):
    NONE = 0
    USER = 1
    ADMIN = 2


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: n=2^14, r=8, p=1 uses 16 MiB and ~50 ms per hash on one core."""

    n: int = 2**14
    r: int = 8
    p: int = 1
    dklen: int = 32
    salt_bytes: int = 16


DEFAULT_SCRYPT = ScryptParams()


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """`scrypt$n$r$p$salt$hash` with a fresh random salt (base64url, no padding)."""
    salt = secrets.token_bytes(params.salt_bytes)
    digest = _scrypt(password, salt, params.n, params.r, params.p, params.dklen)
    return f"scrypt${params.n}${params.r}${params.p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a stored hash; constant-time on the digest."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        expected = _unb64(digest)
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        log.warning("unreadable password hash in the user store")
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class User:
    user_id: int
    username: str
    password_hash: str
    role: Role


@dataclass(frozen=True)
class Principal:
    """Who is asking: what a verified token (or a fresh login) says."""

    user_id: int
    username: str
    role: Role

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN


class UserStore:
    """Users by name, kept in memory and appended as JSON lines to a file in the run directory.

    The file is read once at start; each registration appends one line and fsyncs it, so a
    crash never loses a user the client was told exists.
    """

    def __init__(self, path: Path | None = None, params: ScryptParams = DEFAULT_SCRYPT) -> None:
        self.path = path
        self.params = params
        self._by_name: dict[str, User] = {}
        self._by_id: dict[int, User] = {}
        self._dummy_hash = ""

    def load(self) -> None:
        """Read the users file, if there is one."""
        if self.path is None or not self.path.exists():
            return
        for line in self.path.read_bytes().splitlines():
            if line.strip():
                row = orjson.loads(line)
                self._add(User(row["user_id"], row["username"], row["hash"], Role(row["role"])))

    def register(self, username: str, password_hash: str, role: Role = Role.USER) -> User:
        """A new user with the next id; `Rejected(ACCOUNT_EXISTS)` if the name is taken.

        The caller hashes the password (`hash_password`, ~50 ms) off the event loop first.
        """
        if username.casefold() in self._by_name:
            raise Rejected(ResultCode.ACCOUNT_EXISTS, f"user {username} already exists")
        user = User(len(self._by_id) + 1, username, password_hash, role)
        if self.path is not None:
            row = {"user_id": user.user_id, "username": username, "hash": user.password_hash}
            with self.path.open("ab") as file:
                file.write(orjson.dumps({**row, "role": int(role)}) + b"\n")
                file.flush()
                os.fsync(file.fileno())
        self._add(user)
        return user

    def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password matches; the same scrypt work is done for unknown names."""
        user = self._by_name.get(username.casefold())
        if user is None:
            if not self._dummy_hash:
                self._dummy_hash = hash_password("", self.params)
            verify_password(password, self._dummy_hash)
            return None
        return user if verify_password(password, user.password_hash) else None

    def get(self, user_id: int) -> User | None:
        return self._by_id.get(user_id)

    def named(self, username: str) -> User | None:
        return self._by_name.get(username.casefold())

    def _add(self, user: User) -> None:
        self._by_name[user.username.casefold()] = user
        self._by_id[user.user_id] = user


class TokenSigner:
    """Issues and verifies signed, expiring tokens; `clock` returns Unix seconds."""

    def __init__(
        self,
        secret: bytes,
        lifetime_s: int = TOKEN_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("token secret must have at least 16 bytes")
        self._secret = secret
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue(self, user: User | Principal) -> tuple[str, int]:
        """A token for `user` and its expiry (Unix seconds)."""
        expires_at = int(self._clock()) + self.lifetime_s
        payload = f"v1:{user.user_id}:{int(user.role)}:{expires_at}:{user.username}".encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}", expires_at

    def verify(self, token: str) -> Principal | None:
        """The principal a token names, or None if it is malformed, tampered with or expired.

        A client sends the same token with every request: a token whose signature checked
        out is kept (up to `VERIFIED_KEPT`), so the next request costs a lookup and the
        expiry check, not base64 and an HMAC."""
        known = self._verified.get(token)
        if known is not None:
            principal, expires_at = known
            if expires_at > self._clock():
                return principal
            del self._verified[token]
            return None
        try:
            encoded, signature = token.split(".")
            payload = _unb64(encoded)
            if not hmac.compare_digest(self._sign(payload), _unb64(signature)):
                return None
            version, user_id, role, expires, username = payload.decode().split(":", 4)
            expires_at = int(expires)
            if version != "v1" or expires_at <= self._clock():
                return None
            principal = Principal(int(user_id), username, Role(int(role)))
        except (ValueError, UnicodeDecodeError):
            return None
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        self._verified[token] = (principal, expires_at)
        return principal

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def load_or_create_secret(path: Path) -> bytes:
    """The token secret kept in the run directory (mode 0600), created on first start."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 16:
            raise ValueError(f"token secret {path} is too short") from None
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "wb") as file:
        file.write(secret)
        file.flush()
        os.fsync(file.fileno())
    return secret


def authorize(principal: Principal, owner_user_id: int | None, missing: ResultCode) -> None:
    """Let the owner (or an admin) through; refuse everyone else as if the thing did not exist.

    Answering "not found" rather than "forbidden" keeps other users' account and order ids
    from being probed. Every route and message that takes an id goes through here.
    """
    if owner_user_id is None or (owner_user_id != principal.user_id and not principal.admin):
        raise Rejected(missing, "not found")


def require_admin(principal: Principal) -> None:
    if not principal.admin:
        raise Rejected(ResultCode.FORBIDDEN, "administrators only")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 2 * 128 * n * r * p
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
