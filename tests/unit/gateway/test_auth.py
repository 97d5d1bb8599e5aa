"""Auth: scrypt hashes, signed expiring tokens, roles, and the ownership rule."""

from pathlib import Path

import pytest

from engine.codes import ResultCode
from gateway.auth import (
    Principal,
    Role,
    ScryptParams,
    TokenSigner,
    UserStore,
    authorize,
    bearer_token,
    hash_password,
    load_or_create_secret,
    require_admin,
    verify_password,
)
from gateway.errors import Rejected

FAST = ScryptParams(n=2**10)
SECRET = b"k" * 32


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_scrypt_hash_verifies_only_the_right_password() -> None:
    stored = hash_password("correct horse", FAST)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)


def test_the_same_password_gets_a_different_salt() -> None:
    assert hash_password("pw-pw-pw", FAST) != hash_password("pw-pw-pw", FAST)


def test_default_parameters_are_the_documented_ones() -> None:
    assert hash_password("secret-pw").split("$")[1:4] == ["16384", "8", "1"]


def test_a_corrupt_stored_hash_never_verifies() -> None:
    assert not verify_password("x", "scrypt$notanumber$8$1$AA$AA")
    assert not verify_password("x", "md5$whatever")


def test_user_store_registers_authenticates_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    store = UserStore(path, FAST)
    alice = store.register("alice", hash_password("password-1", FAST))
    admin = store.register("root", hash_password("password-2", FAST), Role.ADMIN)
    assert (alice.user_id, admin.user_id) == (1, 2)
    with pytest.raises(Rejected) as refused:
        store.register("ALICE", hash_password("password-3", FAST))
    assert refused.value.code is ResultCode.ACCOUNT_EXISTS
    assert store.authenticate("alice", "password-1") == alice
    assert store.authenticate("alice", "password-2") is None
    assert store.authenticate("nobody", "password-1") is None
    reloaded = UserStore(path, FAST)
    reloaded.load()
    assert reloaded.authenticate("root", "password-2") == admin
    assert reloaded.get(2) == admin


def test_token_round_trip_names_the_user_and_role() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, lifetime_s=60, clock=clock)
    user = Principal(7, "bob", Role.ADMIN)
    token, expires_at = signer.issue(user)
    assert expires_at == int(clock.now) + 60
    assert signer.verify(token) == user


def test_expired_tokens_are_refused() -> None:
    clock = Clock()
    signer = TokenSigner(SECRET, lifetime_s=60, clock=clock)
    token, _ = signer.issue(Principal(1, "a", Role.USER))
    clock.now += 59
    assert signer.verify(token) is not None
    clock.now += 1
    assert signer.verify(token) is None


def test_tampered_tokens_are_refused() -> None:
    signer = TokenSigner(SECRET, clock=Clock())
    token, _ = signer.issue(Principal(1, "mallory", Role.USER))
    payload, signature = token.split(".")
    forged_payload = signer.issue(Principal(1, "mallory", Role.ADMIN))[0].split(".")[0]
    assert signer.verify(f"{forged_payload}.{signature}") is None
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert signer.verify(f"{payload}.{flipped}") is None
    assert TokenSigner(b"other-secret-16b", clock=Clock()).verify(token) is None
    for garbage in ("", ".", "a.b.c", "é.é", payload):
        assert signer.verify(garbage) is None


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc.def") == "abc.def"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_secret_is_created_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "gateway.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(path) == first


def test_owners_and_admins_pass_everyone_else_sees_not_found() -> None:
    alice = Principal(1, "alice", Role.USER)
    admin = Principal(9, "root", Role.ADMIN)
    authorize(alice, 1, ResultCode.NO_SUCH_ACCOUNT)
    authorize(admin, 1, ResultCode.NO_SUCH_ACCOUNT)
    for owner in (2, None):
        with pytest.raises(Rejected) as refused:
            authorize(alice, owner, ResultCode.NO_SUCH_ACCOUNT)
        assert refused.value.code is ResultCode.NO_SUCH_ACCOUNT
    with pytest.raises(Rejected) as refused:
        authorize(admin, None, ResultCode.ORDER_NOT_FOUND)
    assert refused.value.code is ResultCode.ORDER_NOT_FOUND


def test_admin_routes_need_the_admin_role() -> None:
    require_admin(Principal(9, "root", Role.ADMIN))
    with pytest.raises(Rejected) as refused:
        require_admin(Principal(1, "alice", Role.USER))
    assert refused.value.code is ResultCode.FORBIDDEN
