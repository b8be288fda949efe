"""What decisions read besides state: the city, the run cards, the centre's policy and the live fleet."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from agencies.city import City
from agencies.jurisdiction import Jurisdiction
from agencies.plans import Plans

from .dispatch import Fleet


@dataclass(frozen=True)
class Policy:
    """The centre's dispatch policy. ``auto_dispatch``: incident type (or ``*``) -> the least urgent
    priority whose recommendation is assigned at once, without a dispatcher's click."""

    duplicate_radius_m: float = 200.0
    duplicate_window: timedelta = timedelta(minutes=30)
    auto_dispatch: Mapping[str, int] = field(default_factory=dict)

    def auto_dispatches(self, incident_type: str, priority: int) -> bool:
        limit = self.auto_dispatch.get(incident_type, self.auto_dispatch.get("*"))
        return limit is not None and priority <= limit


@dataclass(frozen=True)
class Catalog:
    """What decisions read besides state: the city's agencies, districts and stations, the run cards,
    the dispatch policy, and the live fleet picture (positions are telemetry, not in state)."""

    city: City
    plans: Plans
    fleet: Fleet = field(default_factory=Fleet)
    policy: Policy = field(default_factory=Policy)

    @cached_property
    def jurisdiction(self) -> Jurisdiction:
        return Jurisdiction(self.city)
