"""One DIFF connection's business-state snapshot and its queue of unsent patches.

`push` applies a transaction (a list of patches that belong together, such as a fill's trade,
order and account) to the snapshot and queues it; `peek` answers at once when something is
queued and otherwise parks on an `asyncio.Event` until the next push (no polling). A drained
batch always ends on a transaction boundary, so every `rtn_data` leaves the client consistent.

The queue is bounded: when a client stops peeking, its queued patches are collapsed into the
single patch from what it last received (`mirror`) to the current snapshot, so a slow client
costs one snapshot of memory, not an ever-growing list.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.diff.merge_patch import make_patch, merge_into

Patch = dict[str, Any]

DEFAULT_MAX_PENDING = 1000
"""Queued patches before the queue is collapsed into one."""


class DiffSession:
    """The snapshot, the client's mirror of it, and the patches between the two."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.snapshot: dict[str, Any] = {}
        self.mirror: dict[str, Any] = {}
        self.pending: list[Patch] = []
        self._changed = asyncio.Event()
        self.collapsed = 0

    def push(self, *patches: Patch) -> None:
        """Apply one transaction to the snapshot and queue it for the next `rtn_data`."""
        for patch in patches:
            merge_into(self.snapshot, patch)
        self.pending.extend(patches)
        if len(self.pending) > self.max_pending:
            self._collapse()
        self._changed.set()

    def drain(self) -> list[Patch]:
        """Everything queued (whole transactions only), now; empty if nothing is."""
        patches, self.pending = self.pending, []
        self._changed.clear()
        for patch in patches:
            merge_into(self.mirror, patch)
        return patches

    async def peek(self) -> list[Patch]:
        """The queued patches; waits for the next push when there are none."""
        while not self.pending:
            self._changed.clear()
            await self._changed.wait()
        return self.drain()

    def _collapse(self) -> None:
        patch = make_patch(self.mirror, self.snapshot)
        self.pending = [patch] if patch else []
        self.collapsed += 1
