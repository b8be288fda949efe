"""Bearer tokens, principals and scopes. Pure: the secret and the time are passed in.

A token is ``cp1.<payload>.<signature>``: base64url JSON claims signed with HMAC-SHA256
(stdlib ``hmac``; a JWT library would add algorithm negotiation we do not want).
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from . import commands as c
from .errors import Forbidden, Unauthorized
from .events import Recorded
from .state import State

ROLES = ("dispatcher", "unit", "commander", "admin")
PREFIX = "cp1"
MAX_SUBJECT = 64


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str
    agency: str | None = None
    unit: str | None = None
    expires: int | None = None  # unix seconds, from the token
    token_id: str | None = None  # the token's jti: what a revocation names

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.subject}"

    @property
    def identity(self) -> str:
        """Everything that tells two principals apart (two 'alice' tokens of different agencies differ)."""
        return "|".join((self.role, self.subject, self.agency or "", self.unit or ""))

    @property
    def sees_everything(self) -> bool:
        return self.role in ("commander", "admin") or (self.role == "dispatcher" and self.agency is None)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def issue(secret: str, role: str, subject: str, now: int, ttl_s: int | None = None,
          agency: str | None = None, unit: str | None = None, token_id: str | None = None) -> str:
    """A signed token. ``token_id`` (the ``jti`` claim, default a fresh random one) is what a revocation names."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if role == "unit" and not unit:
        raise ValueError("a unit token needs --unit")
    if not 0 < len(subject) <= MAX_SUBJECT:
        raise ValueError(f"a token's subject must be 1 to {MAX_SUBJECT} characters")
    claims = {"role": role, "sub": subject, "iat": now, "jti": token_id or secrets.token_hex(8)}
    if ttl_s is not None:  # 0 is a token that has already expired, never one that does not
        claims["exp"] = now + ttl_s
    if agency:
        claims["agency"] = agency
    if unit:
        claims["unit"] = unit
    payload = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    return f"{PREFIX}.{payload}.{_sign(secret, payload)}"


def verify(secret: str, token: str, now: int) -> Principal:
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise Unauthorized("The bearer token is not a commandpost token")
    if not hmac.compare_digest(_sign(secret, parts[1]).encode(), parts[2].encode("utf-8", "replace")):
        raise Unauthorized("The bearer token's signature does not match: it was altered or signed elsewhere")
    try:
        claims = json.loads(_unb64(parts[1]))
        role, subject = claims["role"], str(claims["sub"])
    except (ValueError, KeyError, TypeError):
        raise Unauthorized("The bearer token's claims cannot be read") from None
    if role not in ROLES:
        raise Unauthorized(f"The bearer token names an unknown role {role!r}")
    if not 0 < len(subject) <= MAX_SUBJECT:
        raise Unauthorized("The bearer token's subject is empty or too long")
    expires = claims.get("exp")
    if "exp" in claims and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise Unauthorized("The bearer token's claims cannot be read: its expiry is not a whole number")
    if "exp" in claims and now >= claims["exp"]:
        raise Unauthorized("The bearer token has expired; ask for a new one")
    token_id = claims.get("jti")
    return Principal(role=role, subject=subject, agency=claims.get("agency"), unit=claims.get("unit"),
                     expires=claims.get("exp"), token_id=token_id if isinstance(token_id, str) else None)


def revoked(p: Principal, state: State) -> str | None:
    """Why ``p``'s token is no longer taken because it was revoked, or None (expiry is ``verify``'s)."""
    revoked_at = state.revoked.get(p.token_id) if p.token_id else None
    return f"This token was revoked at {revoked_at}; ask an administrator for a new one" if revoked_at else None


def _unit_agency(state: State, unit_id: str) -> str | None:
    unit = state.units.get(unit_id)
    return unit.agency_id if unit else None


def _may_command_unit(p: Principal, state: State, unit_id: str) -> bool:
    if p.role == "unit":
        return p.unit == unit_id
    return p.sees_everything or _unit_agency(state, unit_id) in (None, p.agency)


def authorize(p: Principal, cmd: c.Command, state: State) -> None:
    """Raise Forbidden unless ``p`` may issue ``cmd``. Unknown ids pass here and are 404s in decide."""
    if p.role == "admin":
        return
    if isinstance(cmd, c.CommissionUnits):
        raise Forbidden("Only an administrator may put units in service")
    if isinstance(cmd, (c.IssueToken, c.RevokeToken)):
        raise Forbidden("Only an administrator may issue or revoke tokens")
    if isinstance(cmd, c.FlagUnacknowledged):
        raise Forbidden("Only the system's acknowledgement watchdog (an administrator) may flag an assignment "
                        "as unacknowledged")
    if isinstance(cmd, c.ReportIncident):
        if p.role == "unit":
            raise Forbidden("A unit token may not report incidents")
        return
    if isinstance(cmd, (c.AddNote, c.CloseIncident, c.AssignUnits)):
        if p.role == "unit" and not isinstance(cmd, c.AddNote):
            raise Forbidden(f"A unit token may not {'close incidents' if isinstance(cmd, c.CloseIncident) else 'assign units'}")
        if p.role == "unit" and not _unit_on_incident(state, p.unit, cmd.incident_id):
            raise Forbidden(f"Unit {p.unit} is not assigned to incident {cmd.incident_id}")
        if cmd.incident_id in state.incidents and not can_see_incident(p, state, cmd.incident_id):
            raise Forbidden(f"Incident {cmd.incident_id} is outside this token's scope")
    if isinstance(cmd, (c.AddNote, c.CloseIncident)):
        return
    if isinstance(cmd, c.AssignUnits):
        for unit_id in cmd.unit_ids:
            if not _may_command_unit(p, state, unit_id):
                raise Forbidden(f"A {p.agency} dispatcher may not assign unit {unit_id} of another agency")
        return
    if isinstance(cmd, (c.CancelAssignment, c.AckAssignment)):
        assignment = state.assignments.get(cmd.assignment_id)
        unit_id = assignment.unit_id if assignment else None
        if isinstance(cmd, c.CancelAssignment) and p.role == "unit":
            raise Forbidden("A unit token may not cancel assignments; report a status instead")
        if unit_id is not None and not _may_command_unit(p, state, unit_id):
            raise Forbidden(f"This token may not act on assignment {cmd.assignment_id} of unit {unit_id}")
        return
    if isinstance(cmd, c.ChangeUnitStatus):
        if not _may_command_unit(p, state, cmd.unit_id):
            raise Forbidden(f"This token may not change the status of unit {cmd.unit_id}")
        return
    raise Forbidden(f"{type(cmd).__name__} is not allowed for role {p.role}")


def _unit_on_incident(state: State, unit_id: str | None, incident_id: str) -> bool:
    unit = state.units.get(unit_id or "")
    return unit is not None and unit.incident_id == incident_id


def may_move(p: Principal, state: State, unit_id: str) -> None:
    if p.role != "admin" and not _may_command_unit(p, state, unit_id):
        raise Forbidden(f"This token may not report the position of unit {unit_id}")


def can_see_incident(p: Principal, state: State, incident_id: str) -> bool:
    if p.sees_everything:
        return True
    incident = state.incidents.get(incident_id)
    if incident is None:
        return False
    if p.role == "unit":
        return any(state.assignments[a].unit_id == p.unit for a in incident.assignment_ids)
    return p.agency in incident.agencies or any(
        _unit_agency(state, state.assignments[a].unit_id) == p.agency for a in incident.assignment_ids)


def can_see_unit(p: Principal, state: State, unit_id: str) -> bool:
    if p.sees_everything:
        return True
    if p.role == "unit":
        return p.unit == unit_id
    return _unit_agency(state, unit_id) == p.agency


def can_see(p: Principal, rec: Recorded, state: State) -> bool:
    """Whether ``p`` may see one recorded event (judged against current state)."""
    kind, _, ident = rec.stream.partition("/")
    if kind == "token":  # who holds which token is for those who run the centre
        return p.role in ("admin", "commander")
    if p.sees_everything:
        return True
    if p.role == "unit":
        return rec.data.get("unit_id") == p.unit
    if kind == "unit":
        return can_see_unit(p, state, ident)
    return can_see_incident(p, state, ident)
