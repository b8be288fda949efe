"""The unit status lifecycle: the ALLOWED table is the whole rule."""

import pytest

from agencies.lifecycle import (
    ALLOWED,
    ENGAGED,
    InvalidTransition,
    UnitStatus,
    check_transition,
    parse_status,
)

S = UnitStatus

TABLE = {
    S.AVAILABLE: {S.DISPATCHED, S.OUT_OF_SERVICE},
    S.DISPATCHED: {S.EN_ROUTE, S.ON_SCENE, S.AVAILABLE, S.OUT_OF_SERVICE},
    S.EN_ROUTE: {S.ON_SCENE, S.AVAILABLE, S.OUT_OF_SERVICE},
    S.ON_SCENE: {S.TRANSPORTING, S.AVAILABLE, S.OUT_OF_SERVICE},
    S.TRANSPORTING: {S.AT_HOSPITAL, S.AVAILABLE},
    S.AT_HOSPITAL: {S.AVAILABLE},
    S.OUT_OF_SERVICE: {S.AVAILABLE},
}
LEGAL = [(a, b) for a, targets in TABLE.items() for b in targets]
ILLEGAL = [(a, b) for a in S for b in S if a != b and b not in TABLE[a]]


def test_the_table_covers_every_status_and_matches_the_spec():
    assert dict(ALLOWED) == {k: frozenset(v) for k, v in TABLE.items()}


def test_the_table_cannot_be_changed_at_runtime():
    with pytest.raises(TypeError):
        ALLOWED[S.AVAILABLE] = frozenset()  # type: ignore[index]


@pytest.mark.parametrize("current, new", LEGAL, ids=[f"{a}->{b}" for a, b in LEGAL])
def test_every_allowed_transition_passes(current, new):
    check_transition("E12", current, new)


@pytest.mark.parametrize("current, new", ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_other_transition_is_refused_naming_the_unit(current, new):
    with pytest.raises(InvalidTransition, match=f"^Unit M7 cannot go from {current} to {new}; "):
        check_transition("M7", current, new)


def test_the_refusal_lists_where_the_unit_may_go():
    with pytest.raises(InvalidTransition) as caught:
        check_transition("E12", S.AVAILABLE, S.ON_SCENE)
    assert str(caught.value) == (
        "Unit E12 cannot go from available to on_scene; "
        "from available it may go to: dispatched, out_of_service"
    )


def test_a_hospital_visit_cannot_be_skipped_back_to_the_scene():
    with pytest.raises(InvalidTransition, match="from at_hospital it may go to: available$"):
        check_transition("M7", S.AT_HOSPITAL, S.ON_SCENE)


@pytest.mark.parametrize("status", list(S))
def test_moving_to_the_same_status_is_refused(status):
    with pytest.raises(InvalidTransition) as caught:
        check_transition("E12", status, status)
    assert str(caught.value) == f"Unit E12 is already {status}"


def test_an_invalid_transition_is_a_value_error():
    assert issubclass(InvalidTransition, ValueError)


def test_engaged_means_working_an_assignment():
    assert ENGAGED == {S.DISPATCHED, S.EN_ROUTE, S.ON_SCENE, S.TRANSPORTING, S.AT_HOSPITAL}
    assert S.AVAILABLE not in ENGAGED and S.OUT_OF_SERVICE not in ENGAGED


def test_every_engaged_unit_can_be_cleared_to_available():
    assert all(S.AVAILABLE in ALLOWED[s] for s in ENGAGED)


class TestParseStatus:
    def test_parses_every_status_by_its_value(self):
        assert [parse_status(s.value) for s in S] == list(S)

    def test_statuses_are_plain_strings_on_the_wire(self):
        assert S.EN_ROUTE == "en_route" and f"{S.ON_SCENE}" == "on_scene"

    def test_unknown_text_lists_the_known_statuses(self):
        with pytest.raises(ValueError) as caught:
            parse_status("foo")
        assert str(caught.value) == (
            "unknown unit status 'foo'; known: available, dispatched, en_route, on_scene, "
            "transporting, at_hospital, out_of_service"
        )
