"""The API contract v1 shapes: pydantic request models and the JSON views of state."""

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from . import state as st
from .auth import Principal, can_see_unit
from .events import Recorded
from .handlers import Catalog


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_no_nul)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, strict=True, description="WGS 84 degrees")]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, strict=True, description="WGS 84 degrees")]


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


def to_utc(value: datetime) -> datetime:
    """An aware time between 1970 and 2100, in UTC; ValueError with a readable reason otherwise."""
    if value.tzinfo is None:
        raise ValueError("needs a time zone (end it with Z for UTC, or give an offset such as -08:00)")
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:
        value = None
    if value is None or not EARLIEST <= value < LATEST:
        raise ValueError("must lie between 1970 and 2100")
    return value


Instant = Annotated[datetime, AfterValidator(to_utc)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(Strict):
    lat: Latitude
    lon: Longitude


class IncidentIn(Strict):
    type: Annotated[Text, StringConstraints(max_length=64)] = Field(examples=["structure_fire"])
    priority: int | None = Field(default=None, ge=1, le=5, description="1 = most urgent; default from the type")
    location: Location
    address: Annotated[Text, StringConstraints(max_length=300)] | None = None
    description: Annotated[Text, StringConstraints(max_length=4000)] | None = None
    reported_at: Instant | None = Field(default=None, description="when the call came in; default now")


class AssignIn(Strict):
    unit_ids: list[Annotated[Text, StringConstraints(max_length=64)]] = Field(min_length=1, max_length=50)


class NoteIn(Strict):
    text: Annotated[Text, StringConstraints(max_length=4000)]


class CloseIn(Strict):
    disposition: Annotated[Text, StringConstraints(max_length=200)] | None = None


class CancelIn(Strict):
    reason: Annotated[Text, StringConstraints(max_length=200)] | None = None


class StatusIn(Strict):
    status: Annotated[Text, StringConstraints(max_length=32)] = Field(examples=["en_route"])


class PositionIn(Strict):
    lat: Latitude
    lon: Longitude
    heading: float | None = Field(default=None, ge=0, lt=360, allow_inf_nan=False, strict=True)
    speed: float | None = Field(default=None, ge=0, le=150, allow_inf_nan=False, strict=True,
                                description="metres per second")
    at: Instant | None = Field(default=None, description="fix time; default now")


def assignment_view(a: st.Assignment) -> dict[str, Any]:
    return {"id": a.id, "incident_id": a.incident_id, "unit_id": a.unit_id, "active": a.active,
            "assigned_at": a.assigned_at, "acknowledged_at": a.acknowledged_at,
            "ended_at": a.ended_at, "end_reason": a.end_reason, "unacknowledged_at": a.unacknowledged_at}


def incident_view(i: st.Incident, state: st.State, catalog: Catalog) -> dict[str, Any]:
    kind = catalog.plans.incident_types.get(i.type)
    return {
        "id": i.id, "type": i.type, "type_label": kind.label if kind else i.type, "priority": i.priority,
        "status": i.status, "location": i.location, "address": i.address, "description": i.description,
        "districts": i.districts, "agencies": i.agencies, "reported_at": i.reported_at, "opened_at": i.opened_at,
        "closed_at": i.closed_at, "disposition": i.disposition, "notes": i.notes,
        "assignments": [assignment_view(state.assignments[a]) for a in i.assignment_ids],
        "possible_duplicate_of": i.possible_duplicate_of, "recommendation": i.recommendation,
        "version": state.version(f"incident/{i.id}"),
    }


def unit_view(u: st.Unit, state: st.State, position: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": u.id, "agency_id": u.agency_id, "type": u.type, "capabilities": u.capabilities,
        "station_id": u.station_id, "status": u.status, "status_at": u.status_at, "home": u.home,
        "position": position, "assignment_id": u.assignment_id, "incident_id": u.incident_id,
        "version": state.version(f"unit/{u.id}"),
    }


def event_view(p: Principal, rec: Recorded, state: st.State) -> dict[str, Any]:
    """The event as this reader may see it. A recommendation's inputs hold the position of every unit it
    considered; a scoped reader gets only its own units' (and ``redacted``: the hash covers the original)."""
    doc = rec.to_json()
    if rec.type != "RecommendationMade" or p.sees_everything:
        return doc
    units = [u for u in rec.data["inputs"]["units"] if can_see_unit(p, state, u["unit_id"])]
    doc["data"] = {**rec.data, "inputs": {**rec.data["inputs"], "units": units}}
    doc["redacted"] = ["data.inputs.units"]
    return doc


class ErrorOut(BaseModel):
    """Every error answer: a machine code and a message for a person (a 422 from validation adds ``detail``)."""
    error: str = Field(examples=["invalid"])
    message: str = Field(examples=["location.lat: Input should be less than or equal to 90"])
    detail: list[dict[str, Any]] | None = None
