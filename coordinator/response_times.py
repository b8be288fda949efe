"""Response times per agency, folded from the log. Pure: the records and the window are passed in.

An agency's response time to an incident is the time from the call (the incident's ``reported_at``)
to the first of that agency's units reporting ``on_scene`` at it, the figure NFPA 1710 and police
standards measure. Incidents count when reported inside the window; an arrival counts whenever it
came, so an incident reported just before the window's end is not cut short.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from .events import Recorded

READS = ("UnitCommissioned", "IncidentReported", "UnitStatusChanged")  # all the fold looks at


@dataclass(frozen=True)
class AgencyTimes:
    agency_id: str
    seconds: tuple[float, ...]  # one per incident the agency reached, in order of arrival

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.seconds)
        return {"agency_id": self.agency_id, "count": len(ordered),
                "median_s": round(median(ordered), 1) if ordered else None,
                "p90_s": round(percentile(ordered, 0.9), 1) if ordered else None,
                "max_s": round(ordered[-1], 1) if ordered else None}


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values: a time that one in ten calls exceeded, not an average."""
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least the first
    return ordered[int(rank) - 1]


def response_times(records: Iterable[Recorded], frm: datetime, to: datetime,
                   unit_agency: Mapping[str, str]) -> list[AgencyTimes]:
    """Per agency, the seconds from call to first arrival for incidents reported in [frm, to]."""
    reported: dict[str, datetime] = {}
    first: dict[tuple[str, str], float] = {}
    agencies = dict(unit_agency)
    for rec in records:
        if rec.type == "UnitCommissioned":
            agencies[rec.data["unit_id"]] = rec.data["agency_id"]
        elif rec.type == "IncidentReported":
            at = datetime.fromisoformat(rec.data["reported_at"])
            if frm <= at <= to:
                reported[rec.data["incident_id"]] = at
        elif rec.type == "UnitStatusChanged" and rec.data["status"] == "on_scene":
            incident_id, agency_id = rec.data.get("incident_id"), agencies.get(rec.data["unit_id"])
            if incident_id in reported and agency_id is not None:
                key = (agency_id, incident_id)
                if key not in first:
                    first[key] = max(0.0, (datetime.fromisoformat(rec.at) - reported[incident_id]).total_seconds())
    by_agency: dict[str, list[float]] = {}
    for (agency_id, _), seconds in first.items():
        by_agency.setdefault(agency_id, []).append(seconds)
    return [AgencyTimes(agency_id, tuple(seconds)) for agency_id, seconds in sorted(by_agency.items())]
