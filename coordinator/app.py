"""The composition root: ``create_app(settings)`` builds everything; nothing connects at import."""

import asyncio
import contextlib
import gc
import json
import logging
import re
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable

from anyio import to_thread
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from agencies.city import City
from agencies.demo import generate_demo_city
from agencies.plans import load_plans

from . import admin, api, sockets, web
from .auth import Principal
from .bus import make_bus
from .checkpointing import keep_signing, sign_at_stop
from .checkpoints import resolve_key
from .commands import CommissionUnits
from .dispatch import Fleet
from .errors import STATUS, CommandpostError, Conflict, RateLimited
from .handlers import Catalog, Policy
from .log import EventLog, make_engine, migrate
from .metrics import Metrics
from .node import Node
from .ratelimit import Limit, whole_seconds
from .realtime import Hub
from .settings import Settings, resolve_secret
from .tracks import Tracks
from .watchdog import watch_acks

log = logging.getLogger("commandpost")
SYSTEM = Principal(role="admin", subject="system")
Clock = Callable[[], datetime]


class RedactTokens(logging.Filter):
    """Uvicorn logs every request's and socket's path with its query string, and a browser's socket
    carries its bearer token there (``?token=``): the token must not land in the server's log."""

    TOKEN = re.compile(r"(\btoken=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.TOKEN.sub(r"\1<redacted>", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = self.TOKEN.sub(r"\1<redacted>", record.msg)
        return True


REDACT_TOKENS = RedactTokens()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def ensure_city(event_log: EventLog, settings: Settings, city: City | None = None) -> City:
    """The city this database serves: the stored one, else the one given, a manifest's, or the demo city."""
    stored = event_log.load_city()
    if stored is not None:
        return City.from_doc(json.loads(stored))
    if city is None and settings.city_doc is not None:
        from .importer import load_manifest
        city = load_manifest(settings.city_doc)
    city = city or generate_demo_city()
    return City.from_doc(json.loads(event_log.keep_city(json.dumps(city.to_doc()))))


def open_node(settings: Settings, clock: Clock = utc_now, city: City | None = None) -> Node:
    engine = make_engine(settings.log_url)
    migrate(engine)
    event_log = EventLog(engine, clock)
    catalog = Catalog(ensure_city(event_log, settings, city), load_plans(), Fleet(), policy(settings))
    check_policy(catalog)
    return Node(event_log, Tracks(engine), make_bus(settings.redis_url, settings.redis_prefix), catalog,
                snapshot_every=settings.snapshot_every, poll_interval_s=settings.poll_interval_s)


async def _flush_telemetry(hub: Hub) -> None:
    while True:
        await asyncio.sleep(hub.telemetry_interval_s)
        hub.flush()


def policy(settings: Settings) -> Policy:
    return Policy(duplicate_radius_m=settings.duplicate_radius_m,
                  duplicate_window=timedelta(minutes=settings.duplicate_window_min),
                  auto_dispatch=dict(settings.auto_dispatch))


def check_policy(catalog: Catalog) -> None:
    unknown = sorted(set(catalog.policy.auto_dispatch) - set(catalog.plans.incident_types) - {"*"})
    if unknown:
        raise ValueError(f"CP_AUTO_DISPATCH names unknown incident types: {', '.join(unknown)}")


async def start_node(node: Node) -> None:
    """Start following the log, then put in service any unit of the city not yet commissioned."""
    await node.start()
    missing = tuple(u for u in node.catalog.city.units if u.id not in node.state.units)
    if missing:
        try:
            await node.handle(CommissionUnits(missing), SYSTEM)
        except Conflict:  # another node commissioned them first
            await node.catch_up()


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413, before anything reads them whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # FastAPI passes HTTPException through its body parsing untouched
                raise HTTPException(413, f"The request body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)

    async def _refuse(self, scope, receive, send):
        await _error(413, "too_large", f"The request body is larger than {self.max_bytes} bytes")(scope, receive, send)


def rate_limits(settings: Settings) -> dict[str, Limit]:
    """Per-token limits on intake and positions, keyed by the token's identity. They live in this node's
    memory: with several nodes behind a balancer each node limits on its own."""
    limits = {}
    if settings.rate_intake_per_min:
        limits["intake"] = Limit("reports", settings.rate_intake_per_min, "minute", settings.rate_intake_burst)
    if settings.rate_position_per_s:
        limits["position"] = Limit("position reports", settings.rate_position_per_s, "second",
                                   settings.rate_position_burst)
    return limits


def _error(status: int, code: str, message: str, retry_after_s: float | None = None, **extra) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {"Retry-After": "1"} if status == 503 else None
    if status == 429:
        headers = {"Retry-After": str(whole_seconds(retry_after_s or 1))}
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def domain(request: Request, exc: CommandpostError):
        return _error(STATUS[type(exc)], exc.code, exc.message,
                      exc.retry_after_s if isinstance(exc, RateLimited) else None)

    for cls in STATUS:
        app.add_exception_handler(cls, domain)

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException):
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError):
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                    for e in exc.errors()]  # the offending input is left out: it may be NaN, which JSON cannot carry
        readable = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                             for e in problems)
        return JSONResponse({"error": "invalid", "message": readable, "detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        request_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error, request %s", request_id)
        return _error(500, "internal", f"Something went wrong on our side (request {request_id}); it is logged")


def create_app(settings: Settings, clock: Clock = utc_now, city: City | None = None,
               tune_gc: bool = False) -> FastAPI:
    """``tune_gc`` (``commandpost serve`` sets it): once started, freeze what start-up built (the city,
    the projection) out of the collector's reach and collect the young generation less often. Full
    collections over the projection paused fan-out for 200 ms at a time (bench/fanout.py)."""
    secret = resolve_secret(settings)
    signer = resolve_key(settings.checkpoint_key_file, secret)  # signs checkpoints of the head

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        node = await to_thread.run_sync(open_node, settings, clock, city)
        hub = Hub(settings.socket_queue, settings.telemetry_interval_s)
        node.listeners.append(hub.publish)
        node.settle = hub.settle
        node.position_listeners.append(lambda unit_id, fix: hub.position(unit_id, fix.to_json()))
        await start_node(node)
        app.state.node, app.state.hub = node, hub
        if tune_gc:
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
        tasks = [asyncio.create_task(_flush_telemetry(hub), name="commandpost-telemetry"),
                 asyncio.create_task(watch_acks(node, clock, settings.ack_timeout_s, 1.0, SYSTEM),
                                     name="commandpost-ack-watchdog")]
        tasks.append(asyncio.create_task(keep_signing(node, signer, settings.checkpoint_every_s),
                                         name="commandpost-checkpoints"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await node.stop()
            await sign_at_stop(node, signer)
            await node.bus.close()
            node.log.engine.dispose()

    app = FastAPI(title="commandpost", version="0.1.0", lifespan=lifespan,
                  description="Joint police, fire and EMS command centre: API contract v1")
    app.state.secret, app.state.clock, app.state.metrics = secret, clock, Metrics()
    app.state.checkpoint_signer = signer
    app.state.limits = rate_limits(settings)
    app.state.outlines = {}  # the city's districts for maps, per tolerance (api.districts)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for name in ("uvicorn.access", "uvicorn.error"):  # the same filter object is added once however many apps
        logging.getLogger(name).addFilter(REDACT_TOKENS)
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(sockets.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request):
        """Ready while the log answers: a node without the bus still serves its own writes and follows the
        others by polling the log, so a missing bus makes it ``degraded``, not unready."""
        node: Node = request.app.state.node
        log_ok = await to_thread.run_sync(node.log.ping)
        bus_ok = await node.bus.ping()
        ready = log_ok and node.follow_error is None
        body = {"status": "unavailable" if not ready else "ready" if bus_ok else "degraded",
                "log": "ok" if log_ok else "unreachable",
                "bus": "ok" if bus_ok else "unreachable: following the log by polling",
                "follower": node.follow_error or "ok", "seq": node.state.seq}
        return JSONResponse(body, status_code=200 if ready else 503,
                            headers=None if ready else {"Retry-After": "1"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        node: Node = request.app.state.node
        app.state.metrics.batches.set(node.batches)
        app.state.metrics.batched.set(node.batched)
        app.state.metrics.bus_up.set(0 if node.bus_error else 1)
        return PlainTextResponse(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
