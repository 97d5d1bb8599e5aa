"""What every route and WebSocket handler shares: the backend, users, tokens, limits.

`Edge` holds the checks that must be the same everywhere (who is calling, do they own this
account or order), so each handler stays decode → authorize → backend → encode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.codes import ResultCode
from gateway.auth import (
    Principal,
    Role,
    TokenSigner,
    UserStore,
    authorize,
    hash_password,
    load_or_create_secret,
)
from gateway.backend import ExchangeBackend
from gateway.config import EdgeConfig
from gateway.errors import Rejected
from gateway.ratelimit import RateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")

USERS_FILE = "users.jsonl"
SECRET_FILE = "gateway.secret"


@dataclass
class Edge:
    backend: ExchangeBackend
    users: UserStore
    signer: TokenSigner
    limiter: RateLimiter
    config: EdgeConfig
    _hashing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    _hash_waiting: int = 0

    @classmethod
    def open(
        cls,
        backend: ExchangeBackend,
        run_dir: Path,
        config: EdgeConfig | None = None,
        admin: tuple[str, str] | None = None,
    ) -> Edge:
        """The edge of one gateway process: users and the token secret live in `run_dir`.

        `admin` (username, password) creates the operator's administrator on first start;
        administrators cannot be registered over HTTP.
        """
        config = config or EdgeConfig()
        users = UserStore(run_dir / USERS_FILE)
        users.load()
        if admin is not None and users.named(admin[0]) is None:
            users.register(admin[0], hash_password(admin[1]), Role.ADMIN)
        secret = load_or_create_secret(run_dir / SECRET_FILE)
        return cls(
            backend=backend,
            users=users,
            signer=TokenSigner(secret, config.token_lifetime_s),
            limiter=RateLimiter(config.rate_per_second, config.rate_burst),
            config=config,
        )

    def principal(self, token: str | None) -> Principal:
        """The caller a token names: 9002 without a token, 9001 for a bad or expired one."""
        if token is None:
            raise Rejected(ResultCode.NOT_AUTHENTICATED, "log in first (Authorization: Bearer)")
        principal = self.signer.verify(token)
        if principal is None:
            raise Rejected(ResultCode.AUTH_FAILED, "token is invalid or expired")
        return principal

    async def login(self, username: str, password: str) -> Principal:
        """Check a password off the event loop (scrypt costs ~50 ms); 9001 if it is wrong."""
        user = await self._password_work(self.users.authenticate, username, password)
        if user is None:
            log.info("failed login for %r", username[:32])
            raise Rejected(ResultCode.AUTH_FAILED, "wrong username or password")
        return Principal(user.user_id, user.username, user.role)

    async def register(self, username: str, password: str) -> Principal:
        """A new user (role USER; administrators are created by the operator)."""
        password_hash = await self._password_work(hash_password, password, self.users.params)
        user = self.users.register(username, password_hash, Role.USER)
        log.info("registered user %d %s", user.user_id, user.username)
        return Principal(user.user_id, user.username, user.role)

    async def _password_work(self, work: Callable[..., T], *args: Any) -> T:
        """Run scrypt in a thread, one at a time, with a bounded queue (9005 beyond it).

        scrypt is deliberately expensive; without this bound a login flood would take both
        cores from the engine.
        """
        if self._hash_waiting >= self.config.max_password_queue:
            raise Rejected(ResultCode.UNAVAILABLE, "too many logins in progress; retry shortly")
        self._hash_waiting += 1
        try:
            async with self._hashing:
                return await asyncio.to_thread(work, *args)
        finally:
            self._hash_waiting -= 1

    async def owns_account(self, principal: Principal, account_id: int) -> None:
        """1006 unless the caller owns the account (or is an administrator)."""
        owner = await self.backend.account_owner(account_id)
        authorize(principal, owner, ResultCode.NO_SUCH_ACCOUNT)

    async def owns_order(
        self, principal: Principal, order_id: int, account_id: int | None = None
    ) -> None:
        """3001 unless the order is on an account the caller owns (and on `account_id`)."""
        order_account = await self.backend.order_account(order_id)
        if order_account is None or (account_id is not None and order_account != account_id):
            raise Rejected(ResultCode.ORDER_NOT_FOUND, "not found")
        owner = await self.backend.account_owner(order_account)
        authorize(principal, owner, ResultCode.ORDER_NOT_FOUND)
