"""Schemathesis over every operation of the OpenAPI, as a dispatcher and as a unit: no 5xx, every status
documented for its operation, every response in its documented shape, and a refused request writes nothing.

Bounded: a few examples per operation and mode (schema-valid and schema-violating requests), and the whole
run must finish well inside two minutes; the time each run took is printed (``pytest -s`` shows it).
A longer hunt: ``CP_FUZZ_EXAMPLES=100 CP_FUZZ_DEADLINE_S=1200`` (random seeds then)."""

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as hs
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..builders import IN_WEST
from .test_hostile_input import service  # noqa: F401 (the fixture: SQLite, and PostgreSQL when set)

EXAMPLES = int(os.environ.get("CP_FUZZ_EXAMPLES", "8"))  # per operation and generation mode; more to hunt
RUN_DEADLINE_S = float(os.environ.get("CP_FUZZ_DEADLINE_S", "90"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SKIP_HEADERS = {"user-agent", "x-schemathesis-testcaseid", "accept-encoding", "connection"}


def known_ids(client, dispatcher) -> dict[str, list[str]]:
    """Ids that exist, so that some generated requests reach past the 404s."""
    incident = client.post("/v1/incidents", json={"type": "structure_fire", "location": IN_WEST.to_json()},
                           headers=dispatcher).json()
    made = client.post(f"/v1/incidents/{incident['id']}/assignments", json={"unit_ids": ["E1"]},
                       headers=dispatcher).json()
    return {"incident_id": [incident["id"]], "assignment_id": [made["assignments"][0]["id"]],
            "unit_id": ["E1", "P1", "M1"]}


def send(client, case, headers):
    """The case through the app's own test client (its lifespan runs in that client's event loop)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    request = {"method": kwargs["method"], "url": kwargs["url"], "params": kwargs.get("params") or None,
               "headers": {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in SKIP_HEADERS},
               "cookies": kwargs.get("cookies") or None}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content" if isinstance(data, (bytes, str)) else "data"] = data
    return client.request(**request)


def fuzz(client, headers, ids) -> tuple[int, float]:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    node = client.app.state.node
    sent = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        params = {p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            if params and params <= ids.keys() and mode is GenerationMode.POSITIVE:
                real = hs.fixed_dictionaries({name: hs.sampled_from(ids[name]) for name in params})
                strategy = hs.one_of(strategy, real.flatmap(
                    lambda path: operation.as_strategy(generation_mode=mode, path_parameters=path)))

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize="CP_FUZZ_EXAMPLES" not in os.environ,
                      phases=[Phase.explicit, Phase.generate, Phase.shrink],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def check(case):
                nonlocal sent
                before = node.state.seq
                response = send(client, case, headers)
                sent += 1
                case.validate_response(response, checks=CHECKS)
                body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
                if response.status_code >= 400:
                    assert isinstance(body, dict) and body.get("error") and body.get("message"), response.text
                    assert node.state.seq == before, f"{case.method} {case.formatted_path} answered " \
                                                    f"{response.status_code} but wrote to the log"

            try:
                check()
            except Unsatisfiable:  # nothing to get wrong: no parameters, no body (GET /v1/me)
                assert mode is GenerationMode.NEGATIVE, operation.label
            assert time.monotonic() - started < RUN_DEADLINE_S, f"fuzzing ran past {RUN_DEADLINE_S} s"
    return sent, time.monotonic() - started


@pytest.mark.parametrize("role", ["dispatcher", "unit"])
def test_every_operation_survives_schemathesis(service, role):
    ids = known_ids(service.client, service.dispatcher)
    headers = service.dispatcher if role == "dispatcher" else service.mint("unit", unit="E1")
    sent, took = fuzz(service.client, headers, ids)
    print(f"\nschemathesis as {role} on {service.backend}: {sent} requests in {took:.1f} s")
    assert service.verifies()
