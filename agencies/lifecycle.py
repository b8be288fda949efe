"""The unit status lifecycle: which status may follow which.

The happy path is available -> dispatched -> en_route -> on_scene ->
transporting -> at_hospital -> available. A unit may be cleared back to
available from any working status, and may go out of service from any status
before transport. ``ALLOWED`` is the whole rule.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class UnitStatus(StrEnum):
    AVAILABLE = "available"
    DISPATCHED = "dispatched"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    TRANSPORTING = "transporting"
    AT_HOSPITAL = "at_hospital"
    OUT_OF_SERVICE = "out_of_service"


_S = UnitStatus

ALLOWED: Mapping[UnitStatus, frozenset[UnitStatus]] = MappingProxyType({
    _S.AVAILABLE: frozenset({_S.DISPATCHED, _S.OUT_OF_SERVICE}),
    _S.DISPATCHED: frozenset({_S.EN_ROUTE, _S.ON_SCENE, _S.AVAILABLE, _S.OUT_OF_SERVICE}),
    _S.EN_ROUTE: frozenset({_S.ON_SCENE, _S.AVAILABLE, _S.OUT_OF_SERVICE}),
    _S.ON_SCENE: frozenset({_S.TRANSPORTING, _S.AVAILABLE, _S.OUT_OF_SERVICE}),
    _S.TRANSPORTING: frozenset({_S.AT_HOSPITAL, _S.AVAILABLE}),
    _S.AT_HOSPITAL: frozenset({_S.AVAILABLE}),
    _S.OUT_OF_SERVICE: frozenset({_S.AVAILABLE}),
})

# Statuses in which a unit is working an assignment.
ENGAGED: frozenset[UnitStatus] = frozenset(
    {_S.DISPATCHED, _S.EN_ROUTE, _S.ON_SCENE, _S.TRANSPORTING, _S.AT_HOSPITAL}
)

_ORDER = list(UnitStatus)


def _names(statuses: frozenset[UnitStatus]) -> str:
    return ", ".join(s.value for s in sorted(statuses, key=_ORDER.index))


class InvalidTransition(ValueError):
    """A unit was asked to move to a status its current status does not allow."""


def check_transition(unit_id: str, current: UnitStatus, new: UnitStatus) -> None:
    """Return quietly if ``current -> new`` is allowed, else raise InvalidTransition."""
    current, new = parse_status(current), parse_status(new)
    if current == new:
        raise InvalidTransition(f"Unit {unit_id} is already {new.value}")
    allowed = ALLOWED[current]
    if new not in allowed:
        raise InvalidTransition(
            f"Unit {unit_id} cannot go from {current.value} to {new.value}; "
            f"from {current.value} it may go to: {_names(allowed)}"
        )


def parse_status(text: str) -> UnitStatus:
    try:
        return UnitStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in UnitStatus)
        raise ValueError(f"unknown unit status {text!r}; known: {known}") from None
