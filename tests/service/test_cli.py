"""The commandpost command: tokens, import, verify, and serve on a real socket."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coordinator.auth import verify
from coordinator.cli import main
from coordinator.settings import Settings, resolve_secret

from ..realcity import require_shared_data, seattle_manifest

BIN = Path(sys.executable).parent / "commandpost"


def env_for(tmp_path) -> dict:
    return {"CP_DATA_DIR": str(tmp_path)}


def test_token_prints_a_token_the_server_accepts(tmp_path, capsys):
    assert main(["token", "--role", "unit", "--unit", "E1"], environ=env_for(tmp_path)) == 0
    printed = capsys.readouterr().out.strip()
    principal = verify(resolve_secret(Settings(data_dir=tmp_path)), printed, int(time.time()))
    assert (principal.role, principal.unit) == ("unit", "E1")


def test_a_unit_token_without_a_unit_is_refused(tmp_path, capsys):
    assert main(["token", "--role", "unit"], environ=env_for(tmp_path)) == 2
    assert "needs --unit" in capsys.readouterr().err


def test_a_placeholder_secret_is_refused(tmp_path, capsys):
    assert main(["token", "--role", "admin"], environ={**env_for(tmp_path), "CP_SECRET": "changeme"}) == 2
    assert "placeholder" in capsys.readouterr().err


@pytest.mark.realdata
def test_import_a_real_city_then_verify(tmp_path, capsys):
    require_shared_data()
    (tmp_path / "city").mkdir()
    manifest = seattle_manifest(tmp_path / "city")
    data = tmp_path / "data"
    assert main(["import", str(manifest)], environ=env_for(data)) == 0
    out = capsys.readouterr().out
    assert "imported Seattle" in out and "51 districts" in out
    assert main(["import", str(manifest)], environ=env_for(data)) == 1
    assert "already holds a city" in capsys.readouterr().err
    assert main(["verify"], environ=env_for(data)) == 0
    assert "chain intact" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_a_real_socket_with_the_demo_city(tmp_path):
    port = free_port()
    env = {**os.environ, "CP_DATA_DIR": str(tmp_path), "CP_PORT": str(port)}
    server = subprocess.Popen([str(BIN), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if urllib.request.urlopen(f"{base}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        token = subprocess.run([str(BIN), "token", "--role", "dispatcher"], env=env, capture_output=True,
                               text=True, check=True).stdout.strip()
        body = json.dumps({"type": "structure_fire", "location": {"lat": 45.0, "lon": -93.0}}).encode()
        request = urllib.request.Request(f"{base}/v1/incidents", data=body, method="POST", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        incident = json.load(urllib.request.urlopen(request, timeout=5))
        assert {d["agency_id"] for d in incident["districts"]} == {"demo-pd", "demo-fd", "demo-ems"}
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_migrate_brings_an_empty_database_to_the_latest_schema_and_is_repeatable(tmp_path, capsys):
    import sqlalchemy as sa

    assert main(["migrate"], environ=env_for(tmp_path)) == 0
    assert "schema migrated from empty to" in capsys.readouterr().out
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'commandpost.db'}")
    try:
        assert "events" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    assert main(["migrate"], environ=env_for(tmp_path)) == 0
    assert "schema up to date at sqlite:///" in capsys.readouterr().out


def test_migrate_against_an_unreachable_database_exits_1_with_a_readable_message(tmp_path, capsys):
    url = "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nope"
    assert main(["migrate"], environ={**env_for(tmp_path), "CP_DATABASE_URL": url}) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("commandpost: cannot migrate postgresql+psycopg://postgres:***@127.0.0.1:1/nope")
    assert "hunter2" not in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
