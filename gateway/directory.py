"""Which user owns which trading account: kept by the gateways, because records carry no user.

The accounts core knows accounts, not users; the edge decides who may touch an account. The
directory is an append-only JSON-lines file in the run directory, shared by every gateway
process of the instance: an account id is allocated under an exclusive `flock`, after re-reading
what the other gateways appended, so two gateways never hand out the same id.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

DIRECTORY_FILE = "accounts.jsonl"


@dataclass(frozen=True)
class AccountEntry:
    account_id: int
    user_id: int
    name: str


class AccountDirectory:
    """account id → owner, user → accounts; `allocate` claims the next id for a user."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[int, AccountEntry] = {}
        self._by_user: dict[int, list[int]] = {}
        self._offset = 0

    def load(self) -> None:
        """Read the lines appended since the last load (by this or another gateway)."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                tail = handle.read()
        except FileNotFoundError:
            return
        complete = tail[: tail.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            if line.strip():
                self._apply(orjson.loads(line))

    def owner(self, account_id: int) -> int | None:
        entry = self._entries.get(account_id)
        if entry is None:
            self.load()
            entry = self._entries.get(account_id)
        return None if entry is None else entry.user_id

    def entry(self, account_id: int) -> AccountEntry | None:
        return self._entries.get(account_id)

    def accounts_of(self, user_id: int) -> list[AccountEntry]:
        self.load()
        return [self._entries[a] for a in self._by_user.get(user_id, ())]

    def allocate(self, user_id: int, name: str) -> int:
        """A new account id owned by `user_id`, recorded before the exchange hears of it."""
        with self._locked():
            self.load()
            account_id = max(self._entries, default=0) + 1
            self._append({"account_id": account_id, "user_id": user_id, "name": name})
            return account_id

    def release(self, account_id: int) -> None:
        """Forget an id the exchange refused to open (the id itself is never reused)."""
        with self._locked():
            self.load()
            self._append({"account_id": account_id, "user_id": 0, "name": ""})

    def _append(self, row: dict[str, object]) -> None:
        line = orjson.dumps(row) + b"\n"
        with self.path.open("ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.load()

    def _apply(self, row: dict[str, object]) -> None:
        account_id, user_id = int(row["account_id"]), int(row["user_id"])  # type: ignore[call-overload]
        previous = self._entries.get(account_id)
        if previous is not None and previous.user_id:
            self._by_user[previous.user_id].remove(account_id)
        self._entries[account_id] = AccountEntry(account_id, user_id, str(row.get("name", "")))
        if user_id:
            self._by_user.setdefault(user_id, []).append(account_id)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
