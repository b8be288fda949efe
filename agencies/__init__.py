from agencies.lifecycle import (
    ALLOWED,
    ENGAGED,
    InvalidTransition,
    UnitStatus,
    check_transition,
    parse_status,
)
from agencies.model import Agency, AgencyKind, Station, UnitType, parse_kind
from agencies.plans import (
    IncidentType,
    PlanLine,
    Plans,
    ResponsePlan,
    UnknownIncidentType,
    UnknownUnitType,
    load_plans,
)

__all__ = [
    "ALLOWED",
    "ENGAGED",
    "Agency",
    "AgencyKind",
    "IncidentType",
    "InvalidTransition",
    "PlanLine",
    "Plans",
    "ResponsePlan",
    "Station",
    "UnitStatus",
    "UnitType",
    "UnknownIncidentType",
    "UnknownUnitType",
    "check_transition",
    "load_plans",
    "parse_kind",
    "parse_status",
]
