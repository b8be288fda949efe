"""Configuration, read once from an injected mapping (``CP_`` prefix).

Defaults give the embedded mode: a SQLite file and the in-process bus under ``./var``.
Setting ``CP_DATABASE_URL`` / ``CP_REDIS_URL`` selects the production adapters.
"""

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "commandpost", "password", "example"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "commandpost"
    secret: str | None = None
    city_doc: Path | None = None
    snapshot_every: int = 10_000
    max_body_bytes: int = 64 * 1024
    poll_interval_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    duplicate_radius_m: float = 200.0
    duplicate_window_min: float = 30.0
    auto_dispatch: tuple[tuple[str, int], ...] = ()
    ack_timeout_s: float = 30.0
    socket_queue: int = 1000
    telemetry_interval_s: float = 1.0
    checkpoint_key_file: Path | None = None  # Ed25519 PEM (PKCS8); else generated in the data dir
    checkpoint_every_s: float = 60.0  # sign the head this often when it moved
    # Per-token rate limits (0 turns one off). They stop a runaway script or a stuck retry loop flooding the
    # log, far above what people do: a call-taker files a report every minute or two, and even a console
    # keying in a mass-casualty or storm backlog stays well under 120 a minute, 30 at once. A computer-aided
    # dispatch link or an alarm-company feed sharing one token may need more: raise CP_RATE_INTAKE_PER_MIN.
    # AVL terminals report every 1 to 15 s; 2 a second per token, 10 at once, lets a terminal send what
    # it buffered in a short dead spot without letting a broken one write a fix every millisecond.
    rate_intake_per_min: int = 120
    rate_intake_burst: int = 30
    rate_position_per_s: float = 2.0
    rate_position_burst: int = 10

    @property
    def log_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'commandpost.db'}"

    @property
    def embedded(self) -> bool:
        return self.log_url.startswith("sqlite")


def from_env(environ: Mapping[str, str]) -> Settings:
    def get(name: str) -> str | None:
        value = environ.get(f"CP_{name}", "").strip()
        return value or None

    def number(name: str, cast, default):
        raw = get(name)
        if raw is None:
            return default
        try:
            return cast(raw)
        except ValueError:
            raise ValueError(f"CP_{name} must be a number, got {raw!r}") from None

    def bounded(name: str, cast, default, least, most, what: str = "a number"):
        value = number(name, cast, default)
        if not least <= value <= most:  # NaN fails both comparisons too
            raise ValueError(f"CP_{name} must be {what} from {least:,} to {most:,}, got {get(name)!r}")
        return value

    defaults = Settings()
    return Settings(
        data_dir=Path(get("DATA_DIR") or defaults.data_dir),
        database_url=get("DATABASE_URL"),
        redis_url=get("REDIS_URL"),
        redis_prefix=get("REDIS_PREFIX") or defaults.redis_prefix,
        secret=get("SECRET"),
        city_doc=Path(get("CITY")) if get("CITY") else None,
        snapshot_every=number("SNAPSHOT_EVERY", int, defaults.snapshot_every),
        max_body_bytes=number("MAX_BODY_BYTES", int, defaults.max_body_bytes),
        poll_interval_s=number("POLL_INTERVAL_S", float, defaults.poll_interval_s),
        host=get("HOST") or defaults.host,
        port=number("PORT", int, defaults.port),
        duplicate_radius_m=bounded("DUPLICATE_RADIUS_M", float, defaults.duplicate_radius_m, 0, 100_000),
        duplicate_window_min=bounded("DUPLICATE_WINDOW_MIN", float, defaults.duplicate_window_min, 0, 7 * 24 * 60),
        auto_dispatch=parse_auto_dispatch(get("AUTO_DISPATCH")),
        ack_timeout_s=bounded("ACK_TIMEOUT_S", float, defaults.ack_timeout_s, 1, 3600, "a number of seconds"),
        socket_queue=bounded("SOCKET_QUEUE", int, defaults.socket_queue, 200, 100_000, "a whole number"),
        telemetry_interval_s=bounded("TELEMETRY_INTERVAL_S", float, defaults.telemetry_interval_s, 0.05, 60,
                                     "a number of seconds"),
        checkpoint_key_file=Path(get("CHECKPOINT_KEY_FILE")) if get("CHECKPOINT_KEY_FILE") else None,
        checkpoint_every_s=bounded("CHECKPOINT_EVERY_S", float, defaults.checkpoint_every_s, 0.05, 86_400,
                                   "a number of seconds"),
        rate_intake_per_min=bounded("RATE_INTAKE_PER_MIN", int, defaults.rate_intake_per_min, 0, 1_000_000,
                                    "a whole number of reports a minute"),
        rate_intake_burst=bounded("RATE_INTAKE_BURST", int, defaults.rate_intake_burst, 1, 1_000_000,
                                  "a whole number of reports"),
        rate_position_per_s=bounded("RATE_POSITION_PER_S", float, defaults.rate_position_per_s, 0, 1000,
                                    "a number of positions a second"),
        rate_position_burst=bounded("RATE_POSITION_BURST", int, defaults.rate_position_burst, 1, 100_000,
                                    "a whole number of positions"),
    )


def parse_auto_dispatch(text: str | None) -> tuple[tuple[str, int], ...]:
    """``"structure_fire:2,cardiac_arrest:1,*:1"``: assign the recommendation at once for reports of
    that type (``*``: any type) whose priority is that urgent or more (1 = most urgent)."""
    found = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, limit = item.partition(":")
        if not name.strip() or limit.strip() not in {"1", "2", "3", "4", "5"}:
            raise ValueError(f"CP_AUTO_DISPATCH entry {item.strip()!r} must read TYPE:PRIORITY with a "
                             f"priority from 1 to 5, e.g. structure_fire:2 or *:1")
        if name.strip() in dict(found):
            raise ValueError(f"CP_AUTO_DISPATCH names {name.strip()!r} twice; give each type once")
        found.append((name.strip(), int(limit)))
    return tuple(found)


def resolve_secret(settings: Settings) -> str:
    """The signing secret: CP_SECRET, or in embedded mode one generated once and kept in the data dir."""
    if settings.secret is not None:
        if settings.secret.lower() in PLACEHOLDER_SECRETS or len(settings.secret) < 16:
            raise ValueError("CP_SECRET is a placeholder or shorter than 16 characters; set a real random secret")
        return settings.secret
    if not settings.embedded:
        raise ValueError("CP_SECRET is required when CP_DATABASE_URL points at a shared database")
    path = settings.data_dir / "secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()
