"""Websockets: the console stream, a field unit's stream and the replay of a time window.

Every socket authenticates with ``Authorization: Bearer <token>`` or, for browsers, ``?token=``.
A refused socket is accepted and closed at once with a code and a reason a person can read:

    4400  bad query (after, from, to, speed)         4404  no such unit
    4401  no token, or a bad or expired one           4409  fell behind: "resync after=<seq>"
    4403  outside this token's scope                  1000  replay finished
                                                      1009  a frame over 64 KiB (the server's limit)

Resume without loss: subscribe to the hub first, then send the log after ``after`` (only what this
node has applied, so scope is judged on state that knows the event), then the live queue, skipping
any seq already sent. Reconnecting with the last seq received gives every later event once, in order.
Dead peers are found by the server's websocket pings (``commandpost serve`` pings every 20 s).
"""

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from . import auth, replay, schemas
from . import commands as c
from .api import MAX_SEQ, fix_from, parse_time, principal_from, rate_limit, scope_view
from .errors import STATUS, CommandpostError, Invalid, RateLimited, Unauthorized
from .events import Recorded
from .log import format_at
from .realtime import OVERFLOW, RESYNC, Pushed, Telemetry

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")
BACKLOG_PAGE = 1000
SEND_TIMEOUT_S = 10.0  # a send blocked this long means a peer that stopped reading: let it go


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code, self.reason = code, reason


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    await ws.accept()
    await ws.close(code, reason[:120])  # a close reason must fit in 123 bytes


def _principal(ws: WebSocket) -> auth.Principal:
    try:
        return principal_from(ws.app, ws.headers.get("authorization"), ws.query_params.get("token"))
    except CommandpostError as err:
        raise Refused(4401, err.message) from None


def _token_ended(ws: WebSocket, p: auth.Principal) -> str | None:
    """Why an open socket's token no longer holds (revoked, or expired since the socket opened), or None."""
    if p.expires is not None and ws.app.state.clock().timestamp() >= p.expires:
        return "The bearer token has expired; ask for a new one"
    return auth.revoked(p, ws.app.state.node.state)


async def _after(ws: WebSocket) -> int:
    raw = ws.query_params.get("after", "0")
    if not raw.isdigit() or int(raw) > MAX_SEQ:
        raise Refused(4400, f"after={raw!r} must be a whole number of 0 or more (the last seq you received)")
    head = await ws.app.state.node.head()
    if int(raw) > head:  # a seq from another database, or a typo: it would silently skip what comes next
        raise Refused(4400, f"after={raw} is beyond the log's last seq {head}; resume from a seq you received")
    return int(raw)


async def _send_event(ws: WebSocket, p: auth.Principal, rec: Recorded, text: str | None, state) -> None:
    if text is None or (rec.type == "RecommendationMade" and not p.sees_everything):
        text = json.dumps(schemas.event_view(p, rec, state), separators=(",", ":"))
    await _send(ws, text)


async def _send(ws: WebSocket, text: str) -> None:
    """Send, or give the socket up: a peer that keeps its connection open but stops reading must not
    hold its handler and its hub subscription for ever (uvicorn's ping timeout closes the transport
    gracefully, which waits for the very buffer that never drains)."""
    async with asyncio.timeout(SEND_TIMEOUT_S):  # a timer, not a task per send (wait_for made one)
        await ws.send({"type": "websocket.send", "text": text})


async def _stream(ws: WebSocket, p: auth.Principal, after: int, admits, sees_unit, inbox=None,
                  first: bool = False) -> None:
    """Subscribe, send the backlog, then live events; run ``inbox`` (the client's messages) beside it.

    A scoped reader (an agency console, a unit) may first meet an incident half way through its
    story, when one of its units is assigned: before that incident's first event on this socket it
    gets ``{"type": "incident_in_scope", "incident": {...}, "as_of_seq": N}`` with the incident as
    it stands, so it never holds an event about an incident it knows nothing of."""
    node, hub = ws.app.state.node, ws.app.state.hub
    sub = hub.subscribe(admits, sees_unit, first)
    last = after
    known: set[str] = set()

    async def introduce(rec: Recorded, state) -> None:
        incident_id = rec.stream.partition("/")[2]
        if p.sees_everything or not rec.stream.startswith("incident/") or incident_id in known:
            return
        known.add(incident_id)
        incident = state.incidents.get(incident_id)
        if rec.type != "IncidentReported" and incident is not None:
            await _send(ws, json.dumps({"type": "incident_in_scope", "as_of_seq": node.state.seq,
                                        "incident": schemas.incident_view(incident, state, node.catalog)},
                                       separators=(",", ":")))

    async def outgoing() -> None:
        nonlocal last
        while True:  # the backlog, page by page, up to what this node has applied
            head = node.state.seq
            records = [r for r in await node.read(last, BACKLOG_PAGE) if r.seq <= head]
            view = await scope_view(node, p, records)
            for rec in records:
                if admits(rec, view):
                    await introduce(rec, view)
                    await _send_event(ws, p, rec, None, view)
                last = rec.seq
            if len(records) < BACKLOG_PAGE:
                break
        while True:
            item = await sub.queue.get()
            if item is OVERFLOW:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await ws.close(RESYNC, f"resync after={last}")
                return
            ended = _token_ended(ws, p)
            if ended:  # revoked or expired since the socket opened: nothing more goes out on it
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await ws.close(4401, ended)
                return
            if isinstance(item, Telemetry):
                await _send(ws, item.text)
            elif isinstance(item, Pushed) and item.record.seq > last:
                if not p.sees_everything:
                    await introduce(item.record, node.state)
                await _send_event(ws, p, item.record, item.text, node.state)
                last = item.record.seq

    async def incoming() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if inbox is not None:
                await inbox(message)

    await _together(outgoing(), incoming())
    hub.unsubscribe(sub)


async def _together(*jobs) -> None:
    """Run a socket's jobs until the first ends (the peer left, the stream ended); cancel the rest.
    A peer that left is normal; anything else is logged, never swallowed."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, WebSocketDisconnect):
                pass
            except (asyncio.TimeoutError, RuntimeError) as err:  # a send to a gone or stuck peer
                log.info("socket ended: %s: %s", type(err).__name__, err)
            except Exception:
                log.exception("socket job failed")


@router.websocket("/stream")
async def console_stream(ws: WebSocket) -> None:
    """Every later event this token's scope may see, then live; unit positions as telemetry."""
    try:
        p, after = _principal(ws), await _after(ws)
    except Refused as refused:
        return await _refuse(ws, refused.code, refused.reason)
    node = ws.app.state.node
    await ws.accept()
    await _stream(ws, p, after, lambda rec, state=None: auth.can_see(p, rec, state or node.state),
                  lambda unit_id: auth.can_see_unit(p, node.state, unit_id))


@router.websocket("/units/{unit_id}/stream")
async def unit_stream(ws: WebSocket, unit_id: str) -> None:
    """A field unit's own assignments, cancellations and status; it may send ack, status and position."""
    node = ws.app.state.node
    try:
        p, after = _principal(ws), await _after(ws)
        if unit_id not in node.state.units:
            raise Refused(4404, f"No unit {unit_id}")
        if not auth.can_see_unit(p, node.state, unit_id):
            raise Refused(4403, f"Unit {unit_id} is outside this token's scope")
    except Refused as refused:
        return await _refuse(ws, refused.code, refused.reason)
    await ws.accept()

    def admits(rec: Recorded, state=None) -> bool:
        return rec.data.get("unit_id") == unit_id and auth.can_see(p, rec, state or node.state)

    async def inbox(message: dict) -> None:
        await _send(ws, json.dumps(await _answer(ws, p, unit_id, message), separators=(",", ":")))

    await _stream(ws, p, after, admits, None, inbox, first=True)


async def _answer(ws: WebSocket, p: auth.Principal, unit_id: str, message: dict) -> dict[str, Any]:
    """One message from a unit, one reply: ``{"type": "reply", "id": ...}`` or ``{"type": "error", ...}``."""
    ident = None
    try:
        try:
            body = json.loads(message.get("text") or message.get("bytes") or b"")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Invalid("A message must be a JSON object such as "
                          '{"type": "ack", "id": "1", "assignment_id": "..."}') from None
        if not isinstance(body, dict):
            raise Invalid("A message must be a JSON object")
        ident = body.get("id")
        if ident is not None and not isinstance(ident, (str, int)):
            ident, bad = None, ident
            raise Invalid(f"id must be a string or a number, got {type(bad).__name__}")
        ended = _token_ended(ws, p)
        if ended:
            raise Unauthorized(ended)
        return {"type": "reply", "id": ident, **await _act(ws, p, unit_id, body)}
    except RateLimited as err:  # the socket stays open: the unit sends again after retry_after_s
        return {"type": "error", "id": ident, "error": err.code, "status": 429, "message": err.message,
                "retry_after_s": round(err.retry_after_s, 6)}
    except CommandpostError as err:
        return {"type": "error", "id": ident, "error": err.code, "status": STATUS[type(err)], "message": err.message}
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return {"type": "error", "id": ident, "error": "invalid", "status": 422, "message": problems}


async def _act(ws: WebSocket, p: auth.Principal, unit_id: str, body: dict) -> dict[str, Any]:
    node, clock = ws.app.state.node, ws.app.state.clock
    kind = body.get("type")
    if kind == "ack":
        assignment_id = body.get("assignment_id")
        if not isinstance(assignment_id, str) or not assignment_id:
            raise Invalid("An ack needs assignment_id")
        assignment = node.state.assignments.get(assignment_id)
        if assignment is not None and assignment.unit_id != unit_id:
            raise Invalid(f"Assignment {assignment_id} is not unit {unit_id}'s")
        await node.handle(c.AckAssignment(assignment_id), p)
        return {"assignment": schemas.assignment_view(node.state.assignments[assignment_id])}
    if kind == "status":
        status = schemas.StatusIn.model_validate({"status": body.get("status")})
        await node.handle(c.ChangeUnitStatus(unit_id, status.status), p)
        return {"status": node.state.units[unit_id].status}
    if kind == "position":
        rate_limit(ws.app, "position", p)
        position = schemas.PositionIn.model_validate({k: v for k, v in body.items() if k not in ("type", "id")})
        stored = await node.move(unit_id, fix_from(position, clock()), p)
        return {"sampled": stored}
    raise Invalid(f"Unknown message type {kind!r}; a unit may send ack, status or position")


@router.websocket("/replay")
async def replay_window(ws: WebSocket) -> None:
    """The events of [from, to] this token may see, re-sent at ``speed`` times real time (0: at once)."""
    node = ws.app.state.node
    try:
        p = _principal(ws)
        q = ws.query_params
        if "from" not in q or "to" not in q:
            raise Refused(4400, "Replay needs from= and to= (ISO 8601 times with a zone)")
        try:
            frm, to = parse_time(q["from"], "from"), parse_time(q["to"], "to")
            speed = replay.parse_speed(q.get("speed", "1"))
        except (CommandpostError, ValueError) as err:
            raise Refused(4400, getattr(err, "message", str(err))) from None
        if to < frm:
            raise Refused(4400, "to is before from")
    except Refused as refused:
        return await _refuse(ws, refused.code, refused.reason)
    await ws.accept()

    async def play() -> None:
        """Sends at absolute times (start + total delay so far), so send time never adds up into drift."""
        loop = asyncio.get_running_loop()
        after, until = await node.window(frm, to)
        sent, previous, due = 0, frm, loop.time()
        while after < until:
            records = await node.read(after, BACKLOG_PAGE, until)
            if not records:
                break
            after = records[-1].seq
            view = await scope_view(node, p, records)
            visible = [r for r in records if auth.can_see(p, r, view)]
            for step in replay.pace(visible, speed, previous):
                due += step.delay_s
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                ended = _token_ended(ws, p)
                if ended:  # a replay runs for as long as its speed makes it: the token is asked again each time
                    await ws.close(4401, ended)
                    return
                if step.skipped_s:
                    await _send(ws, json.dumps({"type": "replay_skipped", "seconds": round(step.skipped_s, 3)},
                                               allow_nan=False))
                await _send_event(ws, p, step.record, None, view)
                sent += 1
            if visible:
                previous = parse_time(visible[-1].at, "at")
        await _send(ws, json.dumps({"type": "replay_end", "from": format_at(frm), "to": format_at(to),
                                    "events": sent}))
        await ws.close(1000, "replay finished")

    async def leaving() -> None:  # a client that goes away ends its replay at once
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass

    await _together(play(), leaving())
