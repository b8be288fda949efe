"""Commands: what a person or a device asks for, in the imperative.

Ids and times are created at the edge and arrive here; the decision code never makes them.
"""

from dataclasses import dataclass

from agencies.city import UnitSpec
from geo import LatLon


@dataclass(frozen=True)
class CommissionUnits:
    units: tuple[UnitSpec, ...]


@dataclass(frozen=True)
class ReportIncident:
    incident_id: str
    incident_type: str
    priority: int | None
    location: LatLon
    reported_at: str
    address: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class AddNote:
    incident_id: str
    note_id: str
    text: str


@dataclass(frozen=True)
class AssignUnits:
    incident_id: str
    unit_ids: tuple[str, ...]
    assignment_ids: tuple[str, ...]


@dataclass(frozen=True)
class CancelAssignment:
    assignment_id: str
    reason: str | None = None


@dataclass(frozen=True)
class AckAssignment:
    assignment_id: str


@dataclass(frozen=True)
class FlagUnacknowledged:
    """Sent by the ack watchdog: the assignment has waited too long for its unit's ``ack``.
    ``now`` is the watchdog's time (ISO 8601 UTC), from which the wait is reckoned."""

    assignment_id: str
    now: str


@dataclass(frozen=True)
class ChangeUnitStatus:
    unit_id: str
    status: str


@dataclass(frozen=True)
class CloseIncident:
    incident_id: str
    disposition: str | None = None




@dataclass(frozen=True)
class IssueToken:
    token_id: str
    role: str
    subject: str
    agency: str | None
    unit: str | None
    expires_at: str | None


@dataclass(frozen=True)
class RevokeToken:
    token_id: str
    reason: str | None = None
    minted_offline: bool = False  # the token came from `commandpost token`, so the log never saw it issued


Command = (
    CommissionUnits | ReportIncident | AddNote | AssignUnits | CancelAssignment
    | AckAssignment | FlagUnacknowledged | ChangeUnitStatus | CloseIncident | IssueToken | RevokeToken
)
