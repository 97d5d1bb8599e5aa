"""The aiohttp application: REST routes from `ROUTES`, `/ws`, `/ws/diff`, one error envelope.

Each REST route is wrapped once here: rate limit (per connection and per user), token, body
size/charset/JSON/schema, path and query parameters; then the thin handler runs and its
`Answer` is encoded as the envelope with the status of `gateway.errors.HTTP_STATUS` (a route in
`FAST_HANDLERS` first tries its one-pass shortcut on the decoded body). Anything
that escapes (a bug) is logged and answered 5000, so one bad request never takes the edge down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from engine.codes import ResultCode
from gateway.auth import Principal, bearer_token, require_admin
from gateway.backend import Answer
from gateway.decoding import decode_body
from gateway.diff.handler import diff_endpoint
from gateway.edge import Edge
from gateway.encoding import to_json
from gateway.errors import Rejected, failure, http_status, success
from gateway.native_ws import native_endpoint
from gateway.rest import FAST_HANDLERS, ROUTES
from gateway.routes import Access, Call, Route, parse_params

log = logging.getLogger(__name__)

EDGE_KEY = web.AppKey("edge", Edge)

PRUNE_EVERY_S = 10.0

_HTTP_CODES = {413: ResultCode.PAYLOAD_TOO_LARGE, 503: ResultCode.UNAVAILABLE}

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(edge: Edge) -> web.Application:
    """The application serving every route of the edge for one backend."""
    app = web.Application(
        middlewares=[_error_envelope], client_max_size=edge.config.rest_body_limit
    )
    app[EDGE_KEY] = edge
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _endpoint(edge, route), name=route.name)
    app.router.add_get("/ws", native_endpoint(edge), name="ws")
    app.router.add_get("/ws/diff", diff_endpoint(edge), name="ws_diff")
    app.cleanup_ctx.append(_prune_rate_limits)
    return app


def _endpoint(edge: Edge, route: Route) -> Endpoint:
    fast = FAST_HANDLERS.get(route.handler)

    async def endpoint(request: web.Request) -> web.Response:
        try:
            principal = _caller(edge, route, request)
            params = parse_params(route.path_params, request.match_info)
            params.update(parse_params(route.query_params, request.query))
            body: dict[str, Any] = {}
            if route.body is not None:
                raw = await _read_json(edge, request)
                shortcut = fast(edge, principal, raw) if fast is not None else None
                if shortcut is not None:
                    return _respond(route, await shortcut)
                body = route.body.parse(raw)
            answer = await route.handler(edge, Call(principal, body, params))
        except Rejected as refused:
            answer = Answer(refused.code, refused.message)
        return _respond(route, answer)

    endpoint.__name__ = route.name
    return endpoint


def _caller(edge: Edge, route: Route, request: web.Request) -> Principal | None:
    """Rate limits, then the caller a route needs (None on a public one)."""
    token = bearer_token(request.headers.get("Authorization"))
    known = edge.signer.verify(token) if token else None
    edge.limiter.check(_peer(request), known.user_id if known else None)
    if route.access is Access.PUBLIC:
        return None
    principal = known or edge.principal(token)
    if route.access is Access.ADMIN:
        require_admin(principal)
    return principal


async def _read_json(edge: Edge, request: web.Request) -> dict[str, Any]:
    limit = edge.config.rest_body_limit
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(
            ResultCode.PAYLOAD_TOO_LARGE, f"body of {request.content_length} bytes exceeds {limit}"
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise Rejected(ResultCode.PAYLOAD_TOO_LARGE, f"body exceeds {limit} bytes") from exc
    return decode_body(raw, request.charset, limit, edge.config.min_detection_confidence)


def _respond(route: Route, answer: Answer) -> web.Response:
    if answer.ok:
        payload = answer.data if route.raw else success(answer.data)
    else:
        payload = failure(answer.code, answer.message)
    return web.Response(
        body=to_json(payload), status=http_status(answer.code), content_type="application/json"
    )


def _peer(request: web.Request) -> object:
    """The TCP connection a request came on (per-connection limits), else its address."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return peer if peer is not None else request.remote


@web.middleware
async def _error_envelope(request: web.Request, handler: Endpoint) -> web.StreamResponse:
    """Unknown routes, wrong methods and escaped bugs still answer with the envelope."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, ResultCode.BAD_MESSAGE)
        return web.Response(
            body=to_json(failure(code, exc.reason)),
            status=exc.status,
            content_type="application/json",
            headers={k: v for k, v in exc.headers.items() if k == "Allow"},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return web.Response(
            body=to_json(failure(ResultCode.INTERNAL, "internal error")),
            status=http_status(ResultCode.INTERNAL),
            content_type="application/json",
        )


async def _prune_rate_limits(app: web.Application) -> AsyncIterator[None]:
    limiter = app[EDGE_KEY].limiter

    async def prune() -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            limiter.prune()

    task = asyncio.create_task(prune())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
