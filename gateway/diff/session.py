"""One DIFF connection's business-state snapshot and its queue of unsent patches.

`push` queues a transaction (a list of patches that belong together, such as a fill's trade,
order and account); `drain_frame` hands the whole queue out as one `rtn_data` and `peek` waits
for it (no polling). A drained batch always ends on a transaction boundary, so every `rtn_data`
leaves the client consistent. A patch shared by many sessions (a quote) is a `SharedPatch`,
built and encoded once for all of them, with the whole `rtn_data` frame ready for a session that
has nothing else to send (`send_alone`).

The client's state (`mirror`) is the only tree kept: a patch is merged into it once, when it is
handed out, and the snapshot is the mirror plus what is queued. A shared patch is not merged
when it is handed out but kept as the latest of its stream; the next one of the stream replaces
it when it sets every field the kept one set (a quote always does), so a quote costs a session
no merge at all. Kept patches are merged before any other patch and before the mirror is read.
The queue is bounded: when a client stops peeking, its queued patches are collapsed into the
single patch from the mirror to the snapshot, so a slow client costs one snapshot of memory,
not an ever-growing list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.diff.merge_patch import apply_merge_patch, make_patch, merge_into
from gateway.encoding import to_json
from gateway.frames import frame_header

Patch = dict[str, Any]

DEFAULT_MAX_PENDING = 1000
"""Queued patches before the queue is collapsed into one."""

_RTN_DATA_HEAD = b'{"aid":"rtn_data","data":['
_RTN_DATA_TAIL = b"]}"


def rtn_data(encoded_patches: list[bytes]) -> bytes:
    """The text of one `rtn_data` message carrying the given encoded patches."""
    return b"".join((_RTN_DATA_HEAD, b",".join(encoded_patches), _RTN_DATA_TAIL))


@dataclass(frozen=True, slots=True)
class SharedPatch:
    """A patch many sessions queue, built once: `patch` sets the scalar `fields` of one object
    and nothing else, and every patch of the same `stream` sets that same object."""

    stream: str
    fields: frozenset[str]
    patch: Patch
    encoded: bytes
    frame: bytes
    """The WebSocket frame of an `rtn_data` carrying this patch alone."""

    @classmethod
    def of(cls, stream: str, fields: frozenset[str], patch: Patch) -> SharedPatch:
        encoded = to_json(patch)
        text = rtn_data([encoded])
        return cls(stream, fields, patch, encoded, frame_header(len(text)) + text)

    def covers(self, earlier: SharedPatch) -> bool:
        """Whether merging this alone gives what merging `earlier` then this gives."""
        return earlier.fields is self.fields or earlier.fields <= self.fields


class DiffSession:
    """The client's mirror, the patches queued for it, and who to tell when one is queued."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._mirror: dict[str, Any] = {}
        self._kept: dict[str, SharedPatch] = {}
        self.pending: list[Patch] = []
        self._shared: list[SharedPatch | None] = []
        self._changed = asyncio.Event()
        self.on_change: Callable[[], None] | None = None
        self.collapsed = 0

    @property
    def mirror(self) -> dict[str, Any]:
        """The state the client has (everything handed out so far)."""
        self._merge_kept()
        return self._mirror

    @property
    def snapshot(self) -> dict[str, Any]:
        """The state the client will have once it has everything queued."""
        state: dict[str, Any] = apply_merge_patch(self.mirror, {})
        for patch in self.pending:
            merge_into(state, patch)
        return state

    def push(self, *patches: Patch | SharedPatch) -> None:
        """Queue one transaction for the next `rtn_data`."""
        for patch in patches:
            if isinstance(patch, SharedPatch):
                self.pending.append(patch.patch)
                self._shared.append(patch)
            else:
                self.pending.append(patch)
                self._shared.append(None)
        self._queued()

    def push_shared(self, shared: SharedPatch) -> None:
        """Queue a one-patch transaction that other sessions share."""
        self.pending.append(shared.patch)
        self._shared.append(shared)
        self._queued()

    def send_alone(self, shared: SharedPatch) -> bytes:
        """Hand out `shared` as the whole next `rtn_data` (nothing may be queued): its frame."""
        assert not self.pending, "queued patches go first"
        self._keep(shared)
        return shared.frame

    def drain(self) -> list[Patch]:
        """Everything queued (whole transactions only), now; empty if nothing is."""
        patches, shared = self.pending, self._shared
        self.pending, self._shared = [], []
        self._changed.clear()
        for patch, one in zip(patches, shared, strict=True):
            if one is None:
                self._merge_kept()
                merge_into(self._mirror, patch)
            else:
                self._keep(one)
        return patches

    def drain_frame(self) -> bytes:
        """Everything queued as the text of one `rtn_data` message."""
        encoded = [
            one.encoded if one is not None else to_json(patch)
            for patch, one in zip(self.pending, self._shared, strict=True)
        ]
        self.drain()
        return rtn_data(encoded)

    async def peek(self) -> list[Patch]:
        """The queued patches; waits for the next push when there are none."""
        while not self.pending:
            self._changed.clear()
            await self._changed.wait()
        return self.drain()

    def _keep(self, shared: SharedPatch) -> None:
        """`shared` was handed out: keep it unmerged as the latest of its stream."""
        earlier = self._kept.get(shared.stream)
        if earlier is not None and not shared.covers(earlier):
            merge_into(self._mirror, earlier.patch)
        self._kept[shared.stream] = shared

    def _merge_kept(self) -> None:
        if self._kept:
            for shared in self._kept.values():
                merge_into(self._mirror, shared.patch)
            self._kept.clear()

    def _queued(self) -> None:
        if len(self.pending) > self.max_pending:
            self._collapse()
        self._changed.set()
        if self.on_change is not None:
            self.on_change()

    def _collapse(self) -> None:
        patch = make_patch(self.mirror, self.snapshot)
        self.pending = [patch] if patch else []
        self._shared = [None] * len(self.pending)
        self.collapsed += 1
