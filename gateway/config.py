"""The edge's limits in one place; THREAT_MODEL.md states the same numbers (a test checks it)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import TOKEN_LIFETIME_S
from gateway.decoding import MIN_DETECTION_CONFIDENCE, REST_BODY_LIMIT, WS_FRAME_LIMIT
from gateway.diff.session import DEFAULT_MAX_PENDING
from gateway.outbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES
from gateway.ratelimit import DEFAULT_BURST, DEFAULT_RATE


@dataclass(frozen=True)
class EdgeConfig:
    """Limits of the client edge; override from the TOML config or `SHMEX_GATEWAY_*`."""

    rest_body_limit: int = REST_BODY_LIMIT
    ws_frame_limit: int = WS_FRAME_LIMIT
    min_detection_confidence: float = MIN_DETECTION_CONFIDENCE
    rate_per_second: float = DEFAULT_RATE
    rate_burst: float = DEFAULT_BURST
    token_lifetime_s: int = TOKEN_LIFETIME_S
    ws_heartbeat_s: float = 5.0
    ws_idle_timeout_s: float = 10.0
    ws_max_in_flight: int = 64
    """Requests of one `/ws` connection handled at once; reading pauses beyond it."""
    outbox_max_messages: int = DEFAULT_MAX_MESSAGES
    outbox_max_bytes: int = DEFAULT_MAX_BYTES
    diff_max_pending: int = DEFAULT_MAX_PENDING
    max_password_queue: int = 32
    """Logins/registrations waiting for scrypt (hashed one at a time) before 9005."""
    max_subscriptions: int = 256
    """Instruments one connection may subscribe to."""
    max_orderbook_depth: int = 50
    max_query_count: int = 1000
    """Most rows (K-lines, recent trades) one query returns."""
