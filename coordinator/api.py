"""HTTP routes /v1/...: requests become commands for the node; queries read its state."""

import uuid
from collections import ChainMap
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Any, Callable

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request

from agencies.lifecycle import ALLOWED, UnitStatus
from geo import LatLon
from geo.geojson import district_outlines

from . import auth, reports, response_times, schemas
from . import commands as c
from . import state as st
from .checkpoints import public_key_doc
from .errors import Forbidden, Invalid, Unauthorized
from .events import Recorded
from .handlers import assignment_of, current_recommendation, incident_of, unit_of
from .log import format_at, request_hash
from .node import Node
from .tracks import Fix

ERRORS: dict[int | str, dict[str, Any]] = {  # documented on every route: each error is {"error", "message"}
    status: {"model": schemas.ErrorOut, "description": description} for status, description in {
        400: "The request cannot be parsed (a body that is not UTF-8 JSON)",
        401: "No token, or a forged, malformed or expired one",
        403: "Outside this token's scope",
        404: "No such incident, unit or assignment",
        409: "The state changed under the request (a unit taken, an incident closed); re-read and retry",
        413: "The request body is too large",
        422: "The request is invalid; the message says what to change",
        429: "Too many requests; retry after Retry-After seconds",
        503: "The event log cannot be reached; retry after Retry-After seconds",
    }.items()}
router = APIRouter(prefix="/v1", responses=ERRORS)
MAX_SEQ = 2**63 - 1
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead a device's clock may run before we refuse its times


def get_node(request: Request) -> Node:
    return request.app.state.node


def get_clock(request: Request) -> Callable[[], datetime]:
    return request.app.state.clock


def principal_from(app, authorization: str | None, token: str | None = None) -> auth.Principal:
    """The bearer of a request or socket: ``Authorization: Bearer <token>``, or (sockets from a browser) a
    ``token`` query parameter. Unauthorized, with a message saying what to send, otherwise."""
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("The Authorization header must read 'Bearer <token>'")
    if not token or not token.strip():
        raise Unauthorized("A token is needed: 'Authorization: Bearer <token>' (or ?token= on a websocket); "
                           "mint one with: commandpost token --role dispatcher")
    p = auth.verify(app.state.secret, token.strip(), int(app.state.clock().timestamp()))
    revoked = auth.revoked(p, app.state.node.state)
    if revoked:
        raise Unauthorized(revoked)
    return p


def get_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> auth.Principal:
    return principal_from(request.app, authorization)


def rate_limit(app, name: str, p: auth.Principal) -> None:
    """Count a request against this token's ``name`` limit ("intake", "position"); RateLimited (429) if
    it is spent. The limits are this node's (app.state.limits), on the app's clock."""
    limit = app.state.limits.get(name)
    if limit is not None:
        limit.check(p.identity, app.state.clock().timestamp())


def fix_from(body: schemas.PositionIn, now: datetime) -> Fix:
    """A position report as telemetry: its time defaults to now, and a device clock ahead is clamped."""
    return Fix(LatLon(body.lat, body.lon), not_ahead(body.at or now, now, "Position time"), body.heading, body.speed)


NodeDep = Annotated[Node, Depends(get_node)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def new_id() -> str:
    return str(uuid.uuid4())


def parse_time(text: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise Invalid(f"{name}={text!r} is not an ISO 8601 time such as 2026-11-26T02:14:00Z") from None
    try:
        return schemas.to_utc(value)
    except ValueError as err:
        raise Invalid(f"{name}={text!r} {err}") from None


def time_window(frm: str | None, to: str | None, now: datetime | None, longest: timedelta | None = None,
                default: timedelta = timedelta(hours=24)) -> tuple[datetime, datetime]:
    """A question's ``from``/``to``, checked: ``to`` defaults to now and ``from`` to ``default`` before it;
    the earlier first; at most ``longest`` apart."""
    end = parse_time(to, "to") if to else now
    start = parse_time(frm, "from") if frm else end - default
    if start > end:
        raise Invalid(f"from ({format_at(start)}) is after to ({format_at(end)}); give the earlier time first")
    if longest is not None and end - start > longest:
        raise Invalid(f"The window from {format_at(start)} to {format_at(end)} spans "
                      f"{(end - start) / timedelta(days=1):.1f} days; a report covers at most {longest.days} days")
    return start, end


def not_ahead(value: datetime, now: datetime, name: str) -> datetime:
    if value > now + CLOCK_SKEW:
        raise Invalid(f"{name} {format_at(value)} is in the future; check the device's clock")
    return min(value, now)


async def _run(request: Request, node: Node, cmd: c.Command, p: auth.Principal,
               key: str | None = None, body: Any = None):
    metrics = request.app.state.metrics
    name = type(cmd).__name__
    with metrics.append_seconds.labels(name).time():
        try:
            result = await node.handle(cmd, p, key, request_hash([request.url.path, body]) if key else None)
        except Exception as err:
            metrics.commands.labels(name, type(err).__name__).inc()
            raise
    metrics.commands.labels(name, "replayed" if result.replayed else "ok").inc()
    metrics.events.inc(0 if result.replayed else len(result.records))
    metrics.head.set(node.state.seq)
    return result


async def _visible_incident(node: Node, p: auth.Principal, incident_id: str) -> tuple[st.Incident, st.State]:
    """The incident from the live picture or, closed long ago, rebuilt from the log; checked against scope."""
    state = node.state if incident_id in node.state.incidents else await node.archived(incident_id)
    incident = incident_of(state or st.State(), incident_id)
    if not auth.can_see_incident(p, state, incident_id):
        raise Forbidden(f"Incident {incident_id} is outside this token's scope")
    return incident, state


def _position(node: Node, unit: st.Unit) -> dict[str, Any] | None:
    fix = node.tracks.latest.get(unit.id)
    return fix.to_json() if fix else None


async def scope_view(node: Node, p: auth.Principal, records: list[Recorded]) -> st.State:
    """Live state, plus the incidents of ``records`` that have left it: scope is judged on both, so a
    console reading old history sees what it saw then."""
    if p.sees_everything or p.role == "unit":
        return node.state
    gone = {r.stream[len("incident/"):] for r in records if r.stream.startswith("incident/")} - node.state.incidents.keys()
    incidents, assignments = {}, {}
    for incident_id in gone:
        archived = await node.archived(incident_id)
        if archived is not None:
            incidents.update(archived.incidents)
            assignments.update(archived.assignments)
    if not incidents:
        return node.state
    return st.State(incidents=ChainMap(incidents, node.state.incidents), units=node.state.units,
                    assignments=ChainMap(assignments, node.state.assignments))


# -- incidents ----------------------------------------------------------------------------------
@router.post("/incidents", status_code=201, summary="Report an incident")
async def report_incident(body: schemas.IncidentIn, request: Request, node: NodeDep, p: PrincipalDep,
                          clock: ClockDep, key: IdempotencyKey = None):
    rate_limit(request.app, "intake", p)
    cmd = c.ReportIncident(
        incident_id=new_id(), incident_type=body.type, priority=body.priority,
        location=LatLon(body.location.lat, body.location.lon),
        reported_at=format_at(not_ahead(body.reported_at or clock(), clock(), "reported_at")),
        address=body.address, description=body.description)
    result = await _run(request, node, cmd, p, key, body.model_dump(mode="json"))
    first = st.replay_incident(result.records)  # the answer exactly as first given, also on a retry
    incident = next(iter(first.incidents.values()))
    return schemas.incident_view(incident, first, node.catalog)


@router.get("/incidents", summary="List open incidents and those closed in the last 24 hours")
async def list_incidents(node: NodeDep, p: PrincipalDep,
                         status: Annotated[str, Query(pattern="^(open|closed|all)$")] = "all",
                         limit: Annotated[int, Query(ge=1, le=5000)] = 500):
    state = node.state
    found = [i for i in state.incidents.values()
             if (status == "all" or i.status == status) and auth.can_see_incident(p, state, i.id)]
    found.sort(key=lambda i: (i.status != "open", i.priority, i.opened_at))
    return {"incidents": [schemas.incident_view(i, state, node.catalog) for i in found[:limit]],
            "total": len(found)}


@router.get("/incidents/{incident_id}", summary="One incident")
async def get_incident(incident_id: str, node: NodeDep, p: PrincipalDep):
    incident, state = await _visible_incident(node, p, incident_id)
    return schemas.incident_view(incident, state, node.catalog)


@router.get("/incidents/{incident_id}/recommendation", summary="The units proposed now, per plan line, with reasons")
async def recommendation(incident_id: str, node: NodeDep, p: PrincipalDep, clock: ClockDep):
    _, state = await _visible_incident(node, p, incident_id)
    made = current_recommendation(state, incident_id, node.catalog)
    return {"incident_id": incident_id, "computed_at": format_at(clock()), "seq": node.state.seq, **made.to_json()}


@router.post("/incidents/{incident_id}/assignments", status_code=201, summary="Assign units")
async def assign_units(incident_id: str, body: schemas.AssignIn, request: Request, node: NodeDep,
                       p: PrincipalDep, key: IdempotencyKey = None):
    cmd = c.AssignUnits(incident_id=incident_id, unit_ids=tuple(body.unit_ids),
                        assignment_ids=tuple(new_id() for _ in body.unit_ids))
    result = await _run(request, node, cmd, p, key, body.model_dump(mode="json"))
    made = [st.Assignment(r.data["assignment_id"], incident_id, r.data["unit_id"], assigned_at=r.at)
            for r in result.records if r.type == "UnitAssigned"]  # the first answer, also on a retry
    return {"incident_id": incident_id, "assignments": [schemas.assignment_view(a) for a in made]}


@router.post("/incidents/{incident_id}/notes", status_code=201, summary="Add to the narrative")
async def add_note(incident_id: str, body: schemas.NoteIn, request: Request, node: NodeDep, p: PrincipalDep,
                   key: IdempotencyKey = None):
    result = await _run(request, node, c.AddNote(incident_id, new_id(), body.text), p, key, body.model_dump())
    rec = result.records[0]
    return {"id": rec.data["note_id"], "incident_id": incident_id, "at": rec.at, "author": rec.actor,
            "text": rec.data["text"]}


@router.post("/incidents/{incident_id}/close", summary="Close an incident, releasing its units")
async def close_incident(incident_id: str, request: Request, node: NodeDep, p: PrincipalDep,
                         body: schemas.CloseIn | None = None):
    await _run(request, node, c.CloseIncident(incident_id, body.disposition if body else None), p)
    return schemas.incident_view(node.state.incidents[incident_id], node.state, node.catalog)


@router.get("/incidents/{incident_id}/timeline", summary="Every event of an incident, in order")
async def timeline(incident_id: str, node: NodeDep, p: PrincipalDep):
    await _visible_incident(node, p, incident_id)
    records = await node.timeline(incident_id)
    return {"incident_id": incident_id, "events": [r.to_json() for r in records]}


# -- assignments ----------------------------------------------------------------------------------
@router.post("/assignments/{assignment_id}/ack", summary="The unit acknowledges its assignment")
async def ack(assignment_id: str, request: Request, node: NodeDep, p: PrincipalDep):
    await _run(request, node, c.AckAssignment(assignment_id), p)
    return schemas.assignment_view(node.state.assignments[assignment_id])


@router.post("/assignments/{assignment_id}/cancel", summary="Cancel an assignment, freeing the unit")
async def cancel(assignment_id: str, request: Request, node: NodeDep, p: PrincipalDep,
                 body: schemas.CancelIn | None = None):
    await _run(request, node, c.CancelAssignment(assignment_id, body.reason if body else None), p)
    return schemas.assignment_view(assignment_of(node.state, assignment_id))


# -- units ----------------------------------------------------------------------------------------
@router.get("/units", summary="The fleet")
async def list_units(node: NodeDep, p: PrincipalDep, agency: str | None = None, status: str | None = None,
                     type: str | None = None):
    state = node.state
    found = [u for u in state.units.values()
             if (agency is None or u.agency_id == agency) and (status is None or u.status == status)
             and (type is None or u.type == type) and auth.can_see_unit(p, state, u.id)]
    found.sort(key=lambda u: (u.agency_id, u.id))
    return {"units": [schemas.unit_view(u, state, _position(node, u)) for u in found], "total": len(found)}


@router.get("/units/{unit_id}", summary="One unit")
async def get_unit(unit_id: str, node: NodeDep, p: PrincipalDep):
    unit = unit_of(node.state, unit_id)
    if not auth.can_see_unit(p, node.state, unit_id):
        raise Forbidden(f"Unit {unit_id} is outside this token's scope")
    return schemas.unit_view(unit, node.state, _position(node, unit))


@router.put("/units/{unit_id}/status", summary="Change a unit's status (checked against the lifecycle)")
async def change_status(unit_id: str, body: schemas.StatusIn, request: Request, node: NodeDep, p: PrincipalDep):
    await _run(request, node, c.ChangeUnitStatus(unit_id, body.status), p)
    unit = node.state.units[unit_id]
    return schemas.unit_view(unit, node.state, _position(node, unit))


@router.put("/units/{unit_id}/position", summary="AVL position report (telemetry, not hash-chained)")
async def move(unit_id: str, body: schemas.PositionIn, request: Request, node: NodeDep, p: PrincipalDep,
               clock: ClockDep):
    rate_limit(request.app, "position", p)
    stored = await node.move(unit_id, fix_from(body, clock()), p)
    fix = node.tracks.latest[unit_id]
    return {"unit_id": unit_id, "position": fix.to_json(), "sampled": stored}


# -- time travel and the log ----------------------------------------------------------------------
@router.get("/state", summary="Every incident and unit as they stood at a moment")
async def state_at(at: str, node: NodeDep, p: PrincipalDep,
                   status: Annotated[str, Query(pattern="^(open|closed|all)$")] = "all"):
    when = parse_time(at, "at")
    past = await node.state_at(when)
    positions = await node.positions_at(when)
    incidents = [i for i in past.incidents.values()
                 if (status == "all" or i.status == status) and auth.can_see_incident(p, past, i.id)]
    units = [u for u in past.units.values() if auth.can_see_unit(p, past, u.id)]
    return {
        "at": format_at(when), "seq": past.seq,
        "incidents": [schemas.incident_view(i, past, node.catalog) for i in incidents],
        "units": [schemas.unit_view(u, past, positions[u.id].to_json() if u.id in positions else None)
                  for u in units],
    }


@router.get("/events", summary="Read the log after a seq")
async def read_events(node: NodeDep, p: PrincipalDep, after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
                      limit: Annotated[int, Query(ge=1, le=5000)] = 500):
    records = await node.read(after, limit)
    view = await scope_view(node, p, records)
    visible = [schemas.event_view(p, r, view) for r in records if auth.can_see(p, r, view)]
    return {"events": visible, "next_after": records[-1].seq if records else after, "head": node.state.seq}


@router.get("/events/verify", summary="Check the hash chain end to end")
async def verify(node: NodeDep, p: PrincipalDep):
    if p.role == "unit":
        raise Forbidden("A unit token may not verify the log")
    result = await node.verify()
    return {"ok": result.ok, "checked": result.checked, "head_seq": result.head_seq,
            "first_broken_seq": result.first_broken_seq, "reason": result.reason}


# -- reference ------------------------------------------------------------------------------------
@router.get("/incident-types", summary="Incident types and their response plans")
async def incident_types(node: NodeDep, p: PrincipalDep):
    return {"incident_types": [
        {"id": t.id, "label": t.label, "default_priority": t.default_priority,
         "plan": [{"agency_kind": str(line.kind), "capability": line.capability, "count": line.count}
                  for line in t.plan.lines]}
        for t in sorted(node.catalog.plans.incident_types.values(), key=lambda t: t.id)]}


@router.get("/agencies", summary="Agencies, their districts and stations")
async def agencies(node: NodeDep, p: PrincipalDep):
    city = node.catalog.city
    return {"city": city.name, "agencies": [
        {"id": a.id, "name": a.name, "kind": str(a.kind),
         "districts": [{"id": d.district_id, "name": d.name} for d in city.districts.for_agency(a.id)],
         "stations": [{"id": s.id, "name": s.name, "location": s.location.to_json()}
                      for s in city.stations if s.agency_id == a.id]}
        for a in city.agencies]}


@router.get("/districts", summary="Every agency's districts as GeoJSON, for a map")
async def districts(request: Request, node: NodeDep, p: PrincipalDep,
                    simplify_m: Annotated[int, Query(ge=0, le=500, description="outline tolerance, whole metres")] = 0):
    """A FeatureCollection with ``agency_id``, ``district_id``, ``name`` and the agency's ``kind``. Districts
    are public reference data (a beat map is printed on every precinct's wall): every token may read them.
    A real city's outlines take 30 to 170 ms to build: they are built in a worker thread, so no socket
    waits, and kept per tolerance (at most 501 of them), since a node's city never changes while it runs."""
    kept: dict[int, dict] = request.app.state.outlines
    if simplify_m not in kept:
        kept[simplify_m] = await to_thread.run_sync(outlines, node.catalog.city, simplify_m)
    return kept[simplify_m]


def outlines(city, simplify_m: int) -> dict:
    kinds = {a.id: str(a.kind) for a in city.agencies}
    doc = district_outlines(city.districts, simplify_m / 111_320)
    for feature in doc["features"]:
        feature["properties"]["kind"] = kinds.get(feature["properties"]["agency_id"])
    return doc


@router.get("/lifecycle", summary="Which unit status may follow which")
async def lifecycle(p: PrincipalDep):
    """``dispatched`` comes only from an assignment, so a crew's terminal never offers it."""
    return {"statuses": [s.value for s in UnitStatus],
            "next": {s.value: sorted(n.value for n in ALLOWED[s]) for s in UnitStatus},
            "by_assignment_only": [UnitStatus.DISPATCHED.value]}


@router.get("/me", summary="Who this token speaks for")
async def me(p: PrincipalDep):
    """The token's role, subject, agency and unit, and when it expires: a console signs in with this."""
    return {"role": p.role, "subject": p.subject, "agency": p.agency, "unit": p.unit, "actor": p.actor,
            "token_id": p.token_id,
            "sees_everything": p.sees_everything,
            "expires_at": format_at(datetime.fromtimestamp(p.expires, timezone.utc)) if p.expires else None}


# -- reports (SQL over the log and the tracks; PostGIS in production) -------------------------------
REPORT_ROLES = ("commander", "dispatcher", "admin")
REPORT_MAX_RADIUS_M = 100_000
REPORT_MAX_WINDOW = timedelta(days=31)
REPORT_MAX_LIMIT = 1000
RESPONSE_LOOKBACK = timedelta(hours=1)  # a call's reported_at may precede its IncidentReported event
ARRIVAL_HORIZON = timedelta(hours=6)  # arrivals this long after the window still count
Coordinate = Annotated[float, Query(description="WGS 84 degrees")]
RadiusM = Annotated[float, Query(description=f"metres, 1 to {REPORT_MAX_RADIUS_M:,}")]
From = Annotated[str, Query(alias="from", description="ISO 8601 time with a zone, inclusive")]
To = Annotated[str, Query(description="ISO 8601 time with a zone, inclusive; at most 31 days after from")]
Limit = Annotated[int, Query(description=f"1 to {REPORT_MAX_LIMIT}")]


def report_area(p: auth.Principal, state: st.State, lat: float, lon: float, radius_m: float, frm: str, to: str,
                limit: int) -> reports.Area:
    """A report's question, checked: who may ask, where, how far, when, how many; and the scope of a token."""
    if p.role not in REPORT_ROLES:
        raise Forbidden(f"Reports are for commanders, dispatchers and administrators, not a {p.role} token")
    try:
        point = LatLon(lat, lon)
    except ValueError as err:
        raise Invalid(f"lat/lon: {err}") from None
    if not 1 <= radius_m <= REPORT_MAX_RADIUS_M:  # NaN fails too
        raise Invalid(f"radius_m must be from 1 to {REPORT_MAX_RADIUS_M:,} metres, got {radius_m:g}")
    start, end = time_window(frm, to, None, REPORT_MAX_WINDOW)  # both ends are required here
    if not 1 <= limit <= REPORT_MAX_LIMIT:
        raise Invalid(f"limit must be from 1 to {REPORT_MAX_LIMIT}, got {limit}")
    scope = None
    if not p.sees_everything:
        scope = reports.Scope(p.agency or "", frozenset(u.id for u in state.units.values() if u.agency_id == p.agency))
    return reports.Area(point, radius_m, start, end, limit, scope)


async def answer_report(node: Node, area: reports.Area, report: Callable, key: str) -> dict[str, Any]:
    """Run a report's SQL in a worker thread and answer with the question it answered."""
    found = await to_thread.run_sync(partial(report, node.log.engine, area.point, area.radius_m, area.frm, area.to,
                                             area.limit, area.scope))
    return {"center": area.point.to_json(), "radius_m": area.radius_m, "from": format_at(area.frm),
            "to": format_at(area.to), "count": len(found), key: [item.to_json() for item in found]}


@router.get("/reports/incidents-near", summary="Incidents reported in a time window within a radius, nearest first")
async def incidents_near(node: NodeDep, p: PrincipalDep, lat: Coordinate, lon: Coordinate, radius_m: RadiusM,
                         frm: From, to: To, limit: Limit = 100):
    area = report_area(p, node.state, lat, lon, radius_m, frm, to, limit)
    return await answer_report(node, area, reports.incidents_near, "incidents")


@router.get("/reports/units-near", summary="Units whose track came within a radius in a time window, closest approach first")
async def units_near(node: NodeDep, p: PrincipalDep, lat: Coordinate, lon: Coordinate, radius_m: RadiusM,
                     frm: From, to: To, limit: Limit = 100):
    area = report_area(p, node.state, lat, lon, radius_m, frm, to, limit)
    answer = await answer_report(node, area, reports.units_near, "units")
    units = node.state.units
    for unit in answer["units"]:
        unit["agency_id"] = units[unit["unit_id"]].agency_id if unit["unit_id"] in units else None
    return answer


RESPONSE_PAGE = 5000


@router.get("/reports/response-times", summary="Call-to-arrival times per agency for incidents reported in a window")
async def response_time_report(node: NodeDep, p: PrincipalDep, clock: ClockDep,
                               frm: Annotated[str | None, Query(alias="from", description="ISO 8601; default 24 h before to")] = None,
                               to: Annotated[str | None, Query(description="ISO 8601; default now")] = None):
    """Per agency: how many incidents of the window it reached, and the median, 90th percentile and longest
    time from the call to its first unit on scene. The window defaults to the last 24 hours. An agency
    token sees its own agency's figures."""
    if p.role not in REPORT_ROLES:
        raise Forbidden(f"Reports are for commanders, dispatchers and administrators, not a {p.role} token")
    start, end = time_window(frm, to, clock(), REPORT_MAX_WINDOW)
    after, last = await node.window(start - RESPONSE_LOOKBACK, end + ARRIVAL_HORIZON)
    records = []
    while after < last:  # arrivals may come after the window closes: read on past it
        page = await node.read(after, RESPONSE_PAGE, last, response_times.READS)
        if not page:
            break
        records.extend(page)
        after = page[-1].seq
    units = {u.id: u.agency_id for u in node.state.units.values()}
    found = [t.to_json() for t in response_times.response_times(records, start, end, units)
             if p.sees_everything or t.agency_id == p.agency]
    return {"from": format_at(start), "to": format_at(end), "agencies": found}


# -- checkpoints --------------------------------------------------------------------------------------
CHECKPOINT_MAX_LIMIT = 1000


@router.get("/checkpoints", summary="Signed checkpoints of the log's head, with the public key that signed them")
async def list_checkpoints(request: Request, node: NodeDep, p: PrincipalDep,
                           after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
                           limit: Annotated[int, Query(ge=1, le=CHECKPOINT_MAX_LIMIT)] = 100):
    """Any valid token, a unit's too: a checkpoint carries a seq, a hash, a time and a signature, no
    incident data. Save the answer; ``commandpost verify --checkpoint FILE`` checks the log against it."""
    found = await to_thread.run_sync(node.log.checkpoints, after_seq, limit)
    return {"public_key": public_key_doc(request.app.state.checkpoint_signer.public_key), "checkpoints": found}


@router.get("/checkpoints/public-key", summary="The public key checkpoints are signed with")
async def checkpoint_public_key(request: Request, p: PrincipalDep):
    return public_key_doc(request.app.state.checkpoint_signer.public_key)
