import os

import pytest
from fastapi.testclient import TestClient

from coordinator.app import create_app
from coordinator.auth import issue
from coordinator.settings import Settings, resolve_secret

from .builders import Clock, tiny_city


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, snapshot_every=50, poll_interval_s=0.2)


@pytest.fixture
def client(settings, clock):
    with TestClient(create_app(settings, clock=clock, city=tiny_city())) as test_client:
        yield test_client


@pytest.fixture
def token(settings, clock):
    secret = resolve_secret(settings)

    def mint(role="dispatcher", agency=None, unit=None, ttl_s=None):
        return {"Authorization": "Bearer " + issue(secret, role, unit or role, int(clock().timestamp()),
                                                   ttl_s, agency, unit)}
    return mint


@pytest.fixture
def dispatcher(token):
    return token("dispatcher")


def postgres_url() -> str | None:
    return os.environ.get("CP_TEST_DATABASE_URL") or None


def service_url(variable: str, what: str) -> str:
    """A real server's URL from the environment (.ci/run sets them all), or a skip saying what to set:
    the one place tests of PostgreSQL and Redis behaviour skip, never in CI, where every one runs."""
    url = os.environ.get(variable) or None
    if url is None:
        pytest.skip(f"{what}: set {variable} (the CI script does)")
    return url
