"""One DIFF connection's business-state snapshot and its queue of unsent patches.

`push` queues a transaction (a list of patches that belong together, such as a fill's trade,
order and account); `drain_frame` hands the whole queue out as one `rtn_data` and `peek` waits
for it (no polling). A drained batch always ends on a transaction boundary, so every `rtn_data`
leaves the client consistent. A patch shared by many sessions (a quote) is queued with its
encoding (`push_shared`), so the bytes are built once for all of them.

The client's state (`mirror`) is the only tree kept: a patch is merged into it once, when it is
handed out, and the snapshot is the mirror plus what is queued. The queue is bounded: when a
client stops peeking, its queued patches are collapsed into the single patch from the mirror to
the snapshot, so a slow client costs one snapshot of memory, not an ever-growing list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.diff.merge_patch import apply_merge_patch, make_patch, merge_into
from gateway.encoding import to_json

Patch = dict[str, Any]

DEFAULT_MAX_PENDING = 1000
"""Queued patches before the queue is collapsed into one."""

_RTN_DATA_HEAD = b'{"aid":"rtn_data","data":['
_RTN_DATA_TAIL = b"]}"


class DiffSession:
    """The client's mirror, the patches queued for it, and who to tell when one is queued."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.mirror: dict[str, Any] = {}
        self.pending: list[Patch] = []
        self._encoded: list[bytes | None] = []
        self._changed = asyncio.Event()
        self.on_change: Callable[[], None] | None = None
        self.collapsed = 0

    @property
    def snapshot(self) -> dict[str, Any]:
        """The state the client will have once it has everything queued."""
        state: dict[str, Any] = apply_merge_patch(self.mirror, {})
        for patch in self.pending:
            merge_into(state, patch)
        return state

    def push(self, *patches: Patch) -> None:
        """Queue one transaction for the next `rtn_data`."""
        self.pending.extend(patches)
        self._encoded.extend([None] * len(patches))
        self._queued()

    def push_shared(self, patch: Patch, encoded: bytes) -> None:
        """Queue a one-patch transaction that other sessions share, with its JSON bytes."""
        self.pending.append(patch)
        self._encoded.append(encoded)
        self._queued()

    def drain(self) -> list[Patch]:
        """Everything queued (whole transactions only), now; empty if nothing is."""
        patches = self.pending
        self.pending, self._encoded = [], []
        self._changed.clear()
        for patch in patches:
            merge_into(self.mirror, patch)
        return patches

    def drain_frame(self) -> bytes:
        """Everything queued as the text of one `rtn_data` message."""
        encoded = [
            e if e is not None else to_json(p)
            for p, e in zip(self.pending, self._encoded, strict=True)
        ]
        self.drain()
        return b"".join((_RTN_DATA_HEAD, b",".join(encoded), _RTN_DATA_TAIL))

    async def peek(self) -> list[Patch]:
        """The queued patches; waits for the next push when there are none."""
        while not self.pending:
            self._changed.clear()
            await self._changed.wait()
        return self.drain()

    def _queued(self) -> None:
        if len(self.pending) > self.max_pending:
            self._collapse()
        self._changed.set()
        if self.on_change is not None:
            self.on_change()

    def _collapse(self) -> None:
        patch = make_patch(self.mirror, self.snapshot)
        self.pending = [patch] if patch else []
        self._encoded = [None] * len(self.pending)
        self.collapsed += 1
