"""HTTP routes of who may act: tokens issued and revoked (each an event), and the audit of who did what.

A token stays stateless (its signature and expiry are checked on every request), but issuing one
through the API and revoking any one are recorded in the log like every other decision, so the
audit shows who let whom in, and a revocation reaches every node that reads the log.
"""

import math
import uuid
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import Field, StringConstraints

from . import auth, schemas
from . import commands as c
from .api import ERRORS, MAX_SEQ, ClockDep, NodeDep, PrincipalDep, _run, time_window
from .errors import Forbidden, Invalid
from .log import format_at

router = APIRouter(prefix="/v1", responses=ERRORS)
AUDIT_ROLES = ("admin", "commander")
AUDIT_MAX_LIMIT = 1000
TOKEN_MAX_HOURS = 24 * 366
TokenId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class TokenIn(schemas.Strict):
    role: Annotated[str, StringConstraints(pattern="^(dispatcher|unit|commander|admin)$")] = Field(
        examples=["dispatcher"])
    subject: Annotated[schemas.Text, StringConstraints(min_length=1, max_length=auth.MAX_SUBJECT)] | None = None
    agency: Annotated[schemas.Text, StringConstraints(min_length=1, max_length=64)] | None = None
    unit: Annotated[schemas.Text, StringConstraints(min_length=1, max_length=64)] | None = None
    ttl_hours: float = Field(default=12, ge=1 / 60, le=TOKEN_MAX_HOURS, allow_inf_nan=False,
                             description="a shift by default; at least a minute, at most a year")


class RevokeIn(schemas.Strict):
    reason: Annotated[schemas.Text, StringConstraints(max_length=200)] | None = None


@router.post("/tokens", status_code=201, summary="Issue a token (administrators)")
async def issue_token(body: TokenIn, request: Request, node: NodeDep, p: PrincipalDep, clock: ClockDep):
    """The token is in the answer only: the log records that it was issued, to whom and until when."""
    if body.role == "unit" and not body.unit:
        raise Invalid("A unit token needs 'unit': the unit it speaks for")
    if body.unit and body.unit not in node.state.units:
        raise Invalid(f"No unit {body.unit}")
    if body.agency and body.agency not in {a.id for a in node.catalog.city.agencies}:
        raise Invalid(f"No agency {body.agency}")
    now = clock()
    token_id, ttl_s = uuid.uuid4().hex[:16], math.ceil(body.ttl_hours * 3600)
    subject = body.subject or body.unit or body.role
    issued_at = int(now.timestamp())  # a token's times are whole seconds: the log records the token's own expiry
    expires_at = format_at(datetime.fromtimestamp(issued_at + ttl_s, timezone.utc))
    await _run(request, node, c.IssueToken(token_id, body.role, subject, body.agency, body.unit, expires_at), p)
    token = auth.issue(request.app.state.secret, body.role, subject, issued_at, ttl_s, body.agency, body.unit, token_id)
    return {"id": token_id, "token": token, "role": body.role, "subject": subject, "agency": body.agency,
            "unit": body.unit, "expires_at": expires_at}


@router.post("/tokens/{token_id}/revoke", summary="Revoke a token (administrators): refused everywhere from now on")
async def revoke_token(token_id: TokenId, request: Request, node: NodeDep, p: PrincipalDep,
                       body: RevokeIn | None = None,
                       minted_offline: Annotated[bool, Query(description="the id of a token from 'commandpost token'")] = False):
    if token_id == p.token_id:
        raise Invalid("A token cannot revoke itself; use another administrator's token")
    result = await _run(request, node, c.RevokeToken(token_id, body.reason if body else None, minted_offline), p)
    return {"id": token_id, "revoked_at": result.records[0].at, "by": p.actor}


@router.get("/audit", summary="Who did what, when: the log's commands by actor and time (administrators, commanders)")
async def audit(node: NodeDep, p: PrincipalDep, clock: ClockDep,
                actor: Annotated[str | None, Query(max_length=128, description="e.g. dispatcher:alice")] = None,
                frm: Annotated[str | None, Query(alias="from", description="ISO 8601; default 24 h before to")] = None,
                to: Annotated[str | None, Query(description="ISO 8601; default now")] = None,
                limit: Annotated[int, Query(ge=1, le=AUDIT_MAX_LIMIT)] = 200,
                after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ, description="page on: the last seq of the page before")] = 0):
    """Each entry is one recorded event: its seq, time, actor, type and stream, without its data (an auditor
    learns who touched which incident when, and reads the incident itself only if allowed to)."""
    if p.role not in AUDIT_ROLES:
        raise Forbidden(f"The audit is for administrators and commanders, not a {p.role} token")
    if actor is not None and "\x00" in actor:
        raise Invalid("actor must not contain a NUL character")
    start, end = time_window(frm, to, clock())
    first, last = await node.window(start, end)
    records = await node.read(max(first, after_seq), limit, last, actor=actor)
    entries = [{"seq": r.seq, "at": r.at, "actor": r.actor, "type": r.type, "stream": r.stream} for r in records]
    return {"actor": actor, "from": format_at(start), "to": format_at(end), "entries": entries,
            "next_after_seq": records[-1].seq if len(records) == limit else None}
