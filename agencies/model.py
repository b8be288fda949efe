"""Who responds: agency kinds, agencies, unit types with their capabilities, stations."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from geo import LatLon


class AgencyKind(StrEnum):
    POLICE = "police"
    FIRE = "fire"
    EMS = "ems"


def parse_kind(text: str) -> AgencyKind:
    """``"fire"`` -> AgencyKind.FIRE; a readable ValueError for anything else."""
    try:
        return AgencyKind(text)
    except ValueError:
        known = ", ".join(k.value for k in AgencyKind)
        raise ValueError(f"unknown agency kind {text!r}; known: {known}") from None


@dataclass(frozen=True)
class Agency:
    id: str
    name: str
    kind: AgencyKind


@dataclass(frozen=True)
class UnitType:
    """A kind of apparatus (engine, medic, patrol car) and what it can do."""

    id: str
    kind: AgencyKind
    label: str
    capabilities: frozenset[str]

    def provides(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class Station:
    id: str
    agency_id: str
    name: str
    location: LatLon
