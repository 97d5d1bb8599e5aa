"""THREAT_MODEL.md states the limits the code enforces by default."""

from pathlib import Path

from gateway.auth import DEFAULT_SCRYPT, SECRET_BYTES
from gateway.config import EdgeConfig

TEXT = (Path(__file__).resolve().parents[3] / "gateway" / "THREAT_MODEL.md").read_text()


def _says(fragment: str) -> None:
    assert fragment in TEXT, f"THREAT_MODEL.md should say {fragment!r}"


def test_limits_table_matches_the_defaults() -> None:
    config = EdgeConfig()
    _says(f"| REST request body | {config.rest_body_limit} bytes")
    _says(f"| WebSocket text frame | {config.ws_frame_limit} bytes")
    rate = f"{config.rate_per_second:g} per second (burst {config.rate_burst:g})"
    _says(f"| Requests per connection | {rate}")
    _says(f"| Requests per user (all its connections) | {rate}")
    _says(f"| Token lifetime | {config.token_lifetime_s} s")
    _says(f"| one at a time, at most {config.max_password_queue} waiting |")
    _says(f"| `/ws` heartbeat (server ping) | {config.ws_heartbeat_s:g} s")
    _says(f"| `/ws` silence | {config.ws_idle_timeout_s:g} s without")
    _says(f"| {config.outbox_max_messages} messages or {config.outbox_max_bytes} characters |")
    _says(f"| DIFF patches waiting for `peek_message` | {config.diff_max_pending} |")
    _says(f"| Instruments subscribed per connection | {config.max_subscriptions} |")
    _says(f"| {config.max_orderbook_depth} levels / {config.max_query_count} rows |")
    _says(f"| Charset detection confidence | {config.min_detection_confidence:g} |")


def test_password_and_token_parameters_match() -> None:
    s = DEFAULT_SCRYPT
    _says(f"n = {s.n}, r = {s.r}, p = {s.p}, {s.dklen}-byte key and a\n  {s.salt_bytes}-byte")
    _says(f"The secret is {SECRET_BYTES} random bytes")
