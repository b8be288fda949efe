"""Signed checkpoints end to end, on SQLite and PostgreSQL: a node signs its head, ``GET /v1/checkpoints``
publishes the signatures (and nothing of the incidents), and ``commandpost verify --checkpoint`` checks a
saved answer offline."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from coordinator import checkpoints as cps
from coordinator.app import create_app
from coordinator.auth import issue
from coordinator.cli import main
from coordinator.settings import Settings, resolve_secret

from ..adapters import BACKENDS, fresh_engine
from ..builders import Clock, tiny_city

SECRET = "checkpoint-test-secret-0123456789"


def settings_for(backend: str, tmp_path) -> Settings:
    if backend == "sqlite":
        return Settings(data_dir=tmp_path, checkpoint_every_s=0.05, poll_interval_s=0.2)
    engine = fresh_engine(backend, tmp_path)  # emptied
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    return Settings(data_dir=tmp_path, database_url=url, secret=SECRET, checkpoint_every_s=0.05, poll_interval_s=0.2)


def headers(settings: Settings, clock, role="dispatcher", unit=None) -> dict:
    token = issue(resolve_secret(settings), role, unit or role, int(clock().timestamp()), 3600, None, unit)
    return {"Authorization": f"Bearer {token}"}


def environ(settings: Settings) -> dict:
    return {"CP_DATA_DIR": str(settings.data_dir), **({"CP_DATABASE_URL": settings.database_url}
                                                     if settings.database_url else {})}


@pytest.fixture(params=BACKENDS)
def backend_settings(request, tmp_path):
    return settings_for(request.param, tmp_path)


def wait_for_checkpoint(client, hdrs, seq: int) -> dict:
    for _ in range(200):
        answer = client.get("/v1/checkpoints", headers=hdrs).json()
        if answer["checkpoints"] and answer["checkpoints"][-1]["seq"] >= seq:
            return answer
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint reached seq {seq}: {answer}")


def test_a_node_signs_its_head_and_publishes_no_incident_data(backend_settings, tmp_path, capsys):
    settings = backend_settings
    clock = Clock()
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as client:
        dispatcher = headers(settings, clock)
        made = client.post("/v1/incidents", headers=dispatcher, json={
            "type": "structure_fire", "location": {"lat": 37.75, "lon": -122.47},
            "address": "1 Secret Lane", "description": "smoke from the attic"})
        assert made.status_code == 201
        head = client.get("/v1/events?after=0&limit=5000", headers=dispatcher).json()["head"]
        unit = headers(settings, clock, "unit", "E1")  # any valid token may read them, a unit's too
        answer = wait_for_checkpoint(client, unit, head)
        assert client.get("/v1/checkpoints/public-key", headers=unit).json() == answer["public_key"]
        assert client.get("/v1/checkpoints").status_code == 401
    assert set(answer) == {"public_key", "checkpoints"}
    assert set(answer["public_key"]) == {"key_id", "alg", "pem"} and answer["public_key"]["alg"] == "Ed25519"
    assert all(set(cp) == set(cps.FIELDS) for cp in answer["checkpoints"])
    text = json.dumps(answer)
    assert made.json()["id"] not in text and "Secret Lane" not in text and "attic" not in text
    key = cps.load_public_key(answer["public_key"]["pem"])
    assert all(cps.signature_problem(cp, key) is None for cp in answer["checkpoints"])
    seqs = [cp["seq"] for cp in answer["checkpoints"]]
    assert seqs == sorted(set(seqs))  # one per seq

    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(answer))
    pem = tmp_path / "pinned.pem"
    pem.write_text(answer["public_key"]["pem"])  # as GET /v1/checkpoints/public-key gave it (checked above)
    assert main(["verify", "--checkpoint", str(saved), "--public-key", str(pem)], environ=environ(settings)) == 0
    assert f"ok: {len(seqs)} checkpoints hold (up to seq {head}" in capsys.readouterr().out
    one = tmp_path / "one.json"
    one.write_text(json.dumps(answer["checkpoints"][-1]))  # a single checkpoint, with the key pinned
    assert main(["verify", "--checkpoint", str(one), "--public-key", str(pem)], environ=environ(settings)) == 0


def test_a_node_signs_the_head_at_stop(backend_settings):
    settings = backend_settings
    clock = Clock()
    quiet = Settings(**{**settings.__dict__, "checkpoint_every_s": 3600})
    with TestClient(create_app(quiet, clock=clock, city=tiny_city())) as client:
        hdrs = headers(quiet, clock)
        assert client.post("/v1/incidents", headers=hdrs, json={
            "type": "structure_fire", "location": {"lat": 37.75, "lon": -122.47}}).status_code == 201
        head = client.get("/v1/events?limit=1", headers=hdrs).json()["head"]
    with TestClient(create_app(quiet, clock=clock, city=tiny_city())) as client:
        found = client.get("/v1/checkpoints", headers=headers(quiet, clock)).json()["checkpoints"]
    assert found[-1]["seq"] == head


@pytest.mark.parametrize("query", ["after_seq=-1", "after_seq=x", "limit=0", "limit=1001", f"after_seq={2**63}"])
def test_bad_queries_get_a_plain_422(client, dispatcher, query):
    answer = client.get(f"/v1/checkpoints?{query}", headers=dispatcher)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid"
    assert "Traceback" not in answer.text


def test_after_seq_and_limit_page_through(client, dispatcher):
    node = client.app.state.node
    signer = client.app.state.checkpoint_signer
    for seq in (1, 2, 3):
        node.log.save_checkpoint(signer.sign(seq, "a" * 64, "2026-11-26T20:00:00.000000Z"))
    found = client.get("/v1/checkpoints?after_seq=1&limit=1", headers=dispatcher).json()["checkpoints"]
    assert [cp["seq"] for cp in found] == [2]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the checkpoint file"),
    ("{not json", "is not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"checkpoints": []}', "holds no checkpoints"),
    ('{"checkpoints": [{"seq": 1}]}', "checkpoint 1 lacks hash"),
    ('{"seq": 1, "hash": "a", "at": "b", "key_id": "c", "signature": "d"}', "pass --public-key"),
    (('{"public_key": {"pem": "junk"}, "checkpoints": [{"seq": 1, "hash": "a", "at": "b", "key_id": "c", '
      '"signature": "d"}]}'), "pass --public-key"),  # a key inside the file is never taken on trust
])
def test_bad_checkpoint_files_exit_2_with_a_plain_message(tmp_path, capsys, content, message):
    assert main(["migrate"], environ={"CP_DATA_DIR": str(tmp_path)}) == 0
    capsys.readouterr()
    path = tmp_path / "cp.json"
    if content is not None:
        path.write_text(content)
    assert main(["verify", "--checkpoint", str(path)], environ={"CP_DATA_DIR": str(tmp_path)}) == 2
    err = capsys.readouterr().err
    assert err.startswith("commandpost: ") and message in err and "Traceback" not in err


def test_a_missing_log_or_public_key_file_exits_2(tmp_path, capsys):
    signer = cps.Signer(cps.resolve_key(None, "a-secret").private_key)
    path = tmp_path / "cp.json"
    path.write_text(json.dumps(signer.sign(1, "a" * 64, "2026-11-26T20:00:00.000000Z")))
    assert main(["verify", "--checkpoint", str(path), "--public-key", str(tmp_path / "nope.pem")],
                environ={"CP_DATA_DIR": str(tmp_path)}) == 2
    assert "cannot read the public key" in capsys.readouterr().err
    (tmp_path / "k.pem").write_text(cps.public_pem(signer.public_key))
    assert main(["verify", "--checkpoint", str(path), "--public-key", str(tmp_path / "k.pem")],
                environ={"CP_DATA_DIR": str(tmp_path / "empty")}) == 2
    assert "there is no log at" in capsys.readouterr().err


def test_a_bad_checkpoint_key_file_stops_the_server_plainly(tmp_path, capsys):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    assert main(["serve"], environ={"CP_DATA_DIR": str(tmp_path), "CP_CHECKPOINT_KEY_FILE": str(bad)}) == 2
    assert "CP_CHECKPOINT_KEY_FILE" in capsys.readouterr().err
    assert main(["verify"], environ={"CP_DATA_DIR": str(tmp_path), "CP_CHECKPOINT_EVERY_S": "0"}) == 2
    assert "CP_CHECKPOINT_EVERY_S must be" in capsys.readouterr().err
