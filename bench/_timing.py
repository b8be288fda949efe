"""Shared bits for the benchmarks: percentiles, a plain-text table, machine facts, JSON results,
and fresh databases (a SQLite file in a temp dir; a PostgreSQL database created and dropped per run).

Standard library plus the project's own dependencies only.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

if str(ROOT) not in sys.path:  # run as `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


# -- numbers -------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """Latency summary in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms) if ms else float("nan"),
        "p99_ms": percentile(ms, 99),
        "min_ms": min(ms) if ms else float("nan"),
        "max_ms": max(ms) if ms else float("nan"),
    }


def rate_summary(count: int, seconds: Sequence[float]) -> dict[str, float]:
    """Throughput over repeated runs of ``count`` items: median and best rate."""
    rates = [count / s for s in seconds if s > 0]
    return {
        "items": count,
        "runs_s": [round(s, 4) for s in seconds],
        "median_s": statistics.median(seconds),
        "median_per_s": statistics.median(rates),
        "best_per_s": max(rates),
        "worst_per_s": min(rates),
    }


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


# -- output ----------------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    try:
        import sqlalchemy
        import sqlite3
        info["sqlalchemy"] = sqlalchemy.__version__
        info["sqlite"] = sqlite3.sqlite_version
    except ImportError:
        pass
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "coordinator", "agencies",
                                "geo"], capture_output=True, text=True, timeout=10).stdout.strip()
        info["commit"] = head + ("+dirty" if dirty else "")
    with contextlib.suppress(OSError):
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0]
        info["mem_total"] = meminfo.split(":", 1)[1].strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["cpu"] = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                            if line.startswith("model name")), None)
    return info


def write_json(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- databases -------------------------------------------------------------------------------------
def pg_admin_url(cli_value: str | None) -> str:
    return cli_value or os.environ.get("CP_BENCH_PG_URL") or DEFAULT_PG_URL


@contextlib.contextmanager
def sqlite_url(prefix: str = "cp-bench-") -> Iterator[str]:
    """A SQLite URL for a file in a fresh temp dir, removed afterwards."""
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield f"sqlite:///{directory}/log.db"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def pg_version(admin_url: str) -> str | None:
    import sqlalchemy as sa
    try:
        engine = sa.create_engine(admin_url)
        with engine.connect() as conn:
            return conn.execute(sa.text("SHOW server_version")).scalar()
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            engine.dispose()


@contextlib.contextmanager
def postgres_url(admin_url: str, prefix: str = "cp_bench") -> Iterator[str]:
    """Create a fresh database next to ``admin_url``'s, yield its URL, drop it afterwards (even on error)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_reachable(admin_url: str) -> bool:
    return pg_version(admin_url) is not None
