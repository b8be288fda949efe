"""Events: immutable facts in the past tense, and the recorded envelope around them.

An event's fields are JSON-native (str, int, float, list, dict, None) so that what is
hashed, stored and sent on the wire is one and the same document.
"""

import abc
import hashlib
import json
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Event(abc.ABC):
    @abc.abstractmethod
    def stream(self) -> str:
        """The stream this event belongs to: ``incident/<id>``, ``unit/<id>`` or ``token/<id>``."""


class IncidentEvent(Event):
    """An event of one incident's stream."""

    incident_id: str

    def stream(self) -> str:
        return f"incident/{self.incident_id}"


class UnitEvent(Event):
    """An event of one unit's stream."""

    unit_id: str

    def stream(self) -> str:
        return f"unit/{self.unit_id}"


@dataclass(frozen=True)
class UnitCommissioned(UnitEvent):
    unit_id: str
    agency_id: str
    unit_type: str
    capabilities: list[str]
    station_id: str | None
    home: dict[str, float]


@dataclass(frozen=True)
class IncidentReported(IncidentEvent):
    incident_id: str
    incident_type: str
    priority: int
    location: dict[str, float]
    reported_at: str
    districts: list[dict[str, str]]
    agencies: list[str]
    address: str | None = None
    description: str | None = None
    possible_duplicate_of: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecommendationMade(IncidentEvent):
    """The units proposed for an incident and why, with every input the decision read (the plan,
    the travel model, the units considered with their positions) so it can be re-derived later."""

    incident_id: str
    trigger: str
    lines: list[dict]
    shortfall: list[dict]
    coverage_cost: list[dict]
    responsible: list[dict]
    inputs: dict


@dataclass(frozen=True)
class NoteAdded(IncidentEvent):
    incident_id: str
    note_id: str
    text: str


@dataclass(frozen=True)
class UnitAssigned(IncidentEvent):
    incident_id: str
    unit_id: str
    assignment_id: str


@dataclass(frozen=True)
class AssignmentAcknowledged(IncidentEvent):
    incident_id: str
    unit_id: str
    assignment_id: str


@dataclass(frozen=True)
class AssignmentUnacknowledged(IncidentEvent):
    """The unit did not acknowledge within the configured time; it stays assigned (the dispatcher
    decides whether to cancel), and a replacement ``RecommendationMade`` follows."""

    incident_id: str
    unit_id: str
    assignment_id: str
    waited_s: float


@dataclass(frozen=True)
class AssignmentEnded(IncidentEvent):
    """An assignment is over: ``reason`` is ``cancelled``, ``cleared`` or ``incident_closed``."""

    incident_id: str
    unit_id: str
    assignment_id: str
    reason: str


@dataclass(frozen=True)
class UnitStatusChanged(UnitEvent):
    unit_id: str
    status: str
    previous: str
    incident_id: str | None = None


@dataclass(frozen=True)
class IncidentClosed(IncidentEvent):
    incident_id: str
    disposition: str | None = None


class TokenEvent(Event):
    """An event of one token's stream: who may act is part of the record too."""

    token_id: str

    def stream(self) -> str:
        return f"token/{self.token_id}"


@dataclass(frozen=True)
class TokenIssued(TokenEvent):
    """An administrator issued a token (the token itself, a secret, is not recorded)."""
    token_id: str
    role: str
    subject: str
    agency: str | None = None
    unit: str | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class TokenRevoked(TokenEvent):
    """From now on the token is refused on every path and socket, whoever issued it."""
    token_id: str
    reason: str | None = None


REGISTRY: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (UnitCommissioned, IncidentReported, RecommendationMade, NoteAdded, UnitAssigned, AssignmentAcknowledged,
                AssignmentUnacknowledged, AssignmentEnded, UnitStatusChanged, IncidentClosed, TokenIssued, TokenRevoked)
}


def to_data(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in fields(event)}


def from_data(type_name: str, data: dict[str, Any]) -> Event:
    return REGISTRY[type_name](**data)


ENVELOPE = ("seq", "id", "type", "at", "stream", "version", "actor", "data", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the log holds it: numbered, stamped, attributed and chained."""

    seq: int
    id: str
    type: str
    at: str
    stream: str
    version: int
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str
    # The canonical JSON of ``data`` when this process just wrote it (hashing made it): the insert reuses it.
    data_json: str | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "id": self.id, "type": self.type, "at": self.at, "stream": self.stream,
            "version": self.version, "actor": self.actor, "data": self.data,
            "prev_hash": self.prev_hash, "hash": self.hash,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Recorded":
        return cls(**{name: doc[name] for name in ENVELOPE})

    @property
    def event(self) -> Event:
        return from_data(self.type, self.data)


def canonical_json(value: Any) -> str:
    """One spelling per document: sorted keys, no spaces, UTF-8, NaN refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(seq: int, id: str, type: str, at: str, stream: str, version: int, actor: str,
               data: dict[str, Any], prev_hash: str, data_json: str | None = None) -> str:
    """SHA-256 of the canonical JSON of the event without its hash. The body is spelled here field by
    field in sorted key order (exactly what ``canonical_json`` of the whole would give: tested), so
    a caller that has ``data_json`` already does not serialise the data twice."""
    text = partial(json.dumps, ensure_ascii=False)
    body = (f'{{"actor":{text(actor)},"at":{text(at)},"data":{data_json or canonical_json(data)},"id":{text(id)},'
            f'"prev_hash":{text(prev_hash)},"seq":{int(seq)},"stream":{text(stream)},"type":{text(type)},'
            f'"version":{int(version)}}}')
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def expected_hash(rec: Recorded) -> str:
    return chain_hash(rec.seq, rec.id, rec.type, rec.at, rec.stream, rec.version, rec.actor,
                      rec.data, rec.prev_hash)
