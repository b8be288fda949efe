"""Incident types and run cards: the packaged plans.toml, and refusal of a bad plans file."""

import textwrap

import pytest

from agencies.model import AgencyKind
from agencies.plans import (
    PlanLine,
    ResponsePlan,
    UnknownIncidentType,
    UnknownUnitType,
    load_plans,
)

K = AgencyKind

REQUIRED_INCIDENT_TYPES = {
    "structure_fire", "vehicle_fire", "brush_fire", "fire_alarm", "medical_emergency",
    "cardiac_arrest", "traffic_collision_injury", "hazmat", "water_rescue", "shooting",
    "robbery_in_progress", "domestic_violence", "missing_person", "mass_casualty",
}
REQUIRED_UNIT_TYPES = {
    "patrol": K.POLICE, "supervisor": K.POLICE, "k9": K.POLICE, "traffic": K.POLICE,
    "engine": K.FIRE, "truck": K.FIRE, "rescue": K.FIRE, "chief": K.FIRE,
    "hazmat": K.FIRE, "brush": K.FIRE, "boat": K.FIRE,
    "als": K.EMS, "bls": K.EMS, "ems_supervisor": K.EMS,
}


@pytest.fixture(scope="module")
def plans():
    return load_plans()


class TestPackagedPlans:
    def test_has_at_least_15_incident_types_including_the_required_ones(self, plans):
        assert len(plans.incident_types) >= 15
        assert REQUIRED_INCIDENT_TYPES <= set(plans.incident_types)

    def test_has_the_required_unit_types_of_the_right_kind(self, plans):
        assert {t: plans.unit_type(t).kind for t in REQUIRED_UNIT_TYPES} == REQUIRED_UNIT_TYPES

    def test_every_kind_has_incidents_and_unit_types(self, plans):
        assert {t.kind for t in plans.unit_types.values()} == set(K)
        assert set().union(*(t.plan.kinds() for t in plans.incident_types.values())) == set(K)

    def test_every_plan_line_can_be_filled_by_a_unit_type_of_its_kind(self, plans):
        for incident in plans.incident_types.values():
            assert 1 <= incident.default_priority <= 5
            assert incident.plan.lines, incident.id
            for line in incident.plan.lines:
                assert line.count >= 1
                assert any(
                    t.kind == line.kind and line.capability in t.capabilities
                    for t in plans.unit_types.values()
                ), (incident.id, line)

    def test_structure_fire_run_card(self, plans):
        fire = plans.incident_type("structure_fire")
        assert fire.label == "Structure fire" and fire.default_priority == 1
        assert fire.plan.lines == (
            PlanLine(K.EMS, "als", 1),
            PlanLine(K.FIRE, "chief", 1),
            PlanLine(K.FIRE, "engine", 3),
            PlanLine(K.FIRE, "truck", 1),
            PlanLine(K.POLICE, "patrol", 1),
        )
        assert fire.plan.kinds() == {K.FIRE, K.EMS, K.POLICE}
        assert fire.plan.for_kind(K.POLICE) == (PlanLine(K.POLICE, "patrol", 1),)

    def test_capabilities_say_what_a_unit_can_do(self, plans):
        assert {"engine", "fire_suppression", "bls_first_response"} <= plans.unit_type("engine").capabilities
        assert {"als", "bls", "transport"} <= plans.unit_type("als").capabilities
        assert "als" not in plans.unit_type("bls").capabilities

    def test_unknown_incident_type_lists_the_known_ones(self, plans):
        expected = "unknown incident type 'alien_landing'; known types: brush_fire, burglary_in_progress, "
        with pytest.raises(UnknownIncidentType, match=expected):
            plans.incident_type("alien_landing")
        assert issubclass(UnknownIncidentType, ValueError)

    def test_unknown_unit_type_lists_the_known_ones(self, plans):
        with pytest.raises(UnknownUnitType, match="unknown unit type 'tank'; known types: als, bls, boat, "):
            plans.unit_type("tank")


class TestResponsePlan:
    def test_lines_are_sorted_whatever_the_input_order(self):
        a = ResponsePlan((PlanLine(K.POLICE, "patrol", 1), PlanLine(K.FIRE, "engine", 2)))
        b = ResponsePlan((PlanLine(K.FIRE, "engine", 2), PlanLine(K.POLICE, "patrol", 1)))
        assert a == b and a.lines[0].kind == K.FIRE

    def test_a_zero_count_is_refused(self):
        with pytest.raises(ValueError, match="count must be a whole number >= 1, got 0"):
            PlanLine(K.FIRE, "engine", 0)


UNIT_TYPES = """
[unit_types.engine]
kind = "fire"
label = "Engine"
capabilities = ["engine", "fire_suppression"]

[unit_types.patrol]
kind = "police"
label = "Patrol"
capabilities = ["patrol"]
"""


def write(tmp_path, incident="", unit_types=UNIT_TYPES):
    path = tmp_path / "plans.toml"
    path.write_text(textwrap.dedent(unit_types) + textwrap.dedent(incident))
    return path


class TestBadPlansFile:
    def test_a_small_good_file_loads(self, tmp_path):
        plans = load_plans(write(tmp_path, """
            [incident_types.car_fire]
            label = "Car fire"
            default_priority = 2
            plan.fire = { engine = 1 }
            plan.police = { patrol = 1 }
        """))
        assert set(plans.incident_types) == {"car_fire"}
        assert plans.incident_type("car_fire").plan.kinds() == {K.FIRE, K.POLICE}

    @pytest.mark.parametrize(
        "incident, problem",
        [
            ("plan.fire = { ladder = 1 }",
             "incident type 'x': plan.fire asks for capability 'ladder', which no fire unit type "
             "provides; fire capabilities: engine, fire_suppression"),
            ("plan.police = { engine = 1 }", "plan.police asks for capability 'engine'"),
            ("plan.ems = { als = 1 }", "which no ems unit type provides; ems capabilities: (none)"),
            ("plan.fire = { engine = 0 }", "incident type 'x': fire 'engine' count must be a whole number >= 1, got 0"),
            ("plan.fire = { engine = 1.5 }", "count must be a whole number >= 1, got 1.5"),
            ("plan.navy = { engine = 1 }", "unknown agency kind 'navy'; known: police, fire, ems"),
            ("plan = {}", "incident type 'x': the response plan is empty"),
        ],
    )
    def test_a_bad_plan_is_refused_naming_the_problem(self, tmp_path, incident, problem):
        path = write(tmp_path, f"[incident_types.x]\nlabel = 'X'\ndefault_priority = 1\n{incident}\n")
        with pytest.raises(ValueError) as caught:
            load_plans(path)
        assert problem in str(caught.value)
        assert str(caught.value).startswith(f"plans file {path}: ")

    @pytest.mark.parametrize("priority", ["0", "6", "'high'", "true"])
    def test_a_priority_outside_1_to_5_is_refused(self, tmp_path, priority):
        path = write(tmp_path, f"[incident_types.x]\ndefault_priority = {priority}\nplan.fire = {{ engine = 1 }}\n")
        with pytest.raises(ValueError, match="incident type 'x': default_priority must be a whole number from 1"):
            load_plans(path)

    def test_a_unit_type_of_an_unknown_kind_is_refused(self, tmp_path):
        path = write(tmp_path, unit_types='[unit_types.tank]\nkind = "army"\ncapabilities = ["armour"]\n')
        with pytest.raises(ValueError, match="unit type 'tank': unknown agency kind 'army'"):
            load_plans(path)

    def test_a_unit_type_without_capabilities_is_refused(self, tmp_path):
        path = write(tmp_path, unit_types='[unit_types.engine]\nkind = "fire"\ncapabilities = []\n')
        with pytest.raises(ValueError, match="unit type 'engine': capabilities must be a non-empty list"):
            load_plans(path)

    def test_a_file_without_incident_types_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="there is no \\[incident_types\\] table"):
            load_plans(write(tmp_path))

    def test_broken_toml_is_reported_with_the_file_name(self, tmp_path):
        path = tmp_path / "broken.toml"
        path.write_text("[unit_types.engine\n")
        with pytest.raises(ValueError, match="plans file .*broken.toml: "):
            load_plans(path)
