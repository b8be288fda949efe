"""The ``commandpost`` command: serve | token | import | verify | migrate."""

import argparse
import asyncio
import os
import sys
import time

from .settings import Settings, from_env, resolve_secret


def _serve(settings: Settings, args) -> int:
    import uvicorn

    from .app import create_app

    app = create_app(settings, tune_gc=True)
    mode = "embedded (SQLite, in-process bus)" if settings.embedded else "production"
    print(f"commandpost: {mode}, log at {settings.log_url.split('@')[-1]}", file=sys.stderr)
    print("commandpost: mint a token with: commandpost token --role dispatcher", file=sys.stderr)
    # Event streams: no permessage-deflate (it cost 1.1-2.4x in DESIGN.md's measurements); pings every
    # 20 s find dead peers within 40 s; a unit's message is a few hundred bytes, so frames stop at 64 KiB;
    # a peer that stopped reading cannot hold a shutdown for more than 5 s.
    uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port,
                ws_per_message_deflate=False, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                ws_max_size=64 * 1024, timeout_graceful_shutdown=5, log_level="info")
    return 0


def _token(settings: Settings, args) -> int:
    from .auth import issue

    ttl = int(args.ttl_hours * 3600) if args.ttl_hours else None
    subject = args.subject or args.unit or args.role
    print(issue(resolve_secret(settings), args.role, subject, int(time.time()), ttl, args.agency, args.unit))
    return 0


def _import(settings: Settings, args) -> int:
    from .app import open_node, start_node
    from .importer import load_manifest
    from .log import EventLog, make_engine, migrate

    engine = make_engine(settings.log_url)
    migrate(engine)
    stored = EventLog(engine, time.time).load_city()
    engine.dispose()
    if stored is not None:
        print("commandpost: this database already holds a city; import into a fresh one "
              "(set CP_DATA_DIR or CP_DATABASE_URL)", file=sys.stderr)
        return 1
    city = load_manifest(args.manifest)

    async def run():
        node = open_node(settings, city=city)
        await start_node(node)
        await node.stop()
        node.log.engine.dispose()
        return node

    node = asyncio.run(run())
    print(f"commandpost: imported {city.name}: {len(city.agencies)} agencies, {len(city.districts)} districts, "
          f"{len(city.stations)} stations, {len(node.state.units)} units")
    return 0


def _verify(settings: Settings, args) -> int:
    from .log import EventLog, make_engine

    result = EventLog(make_engine(settings.log_url), time.time).verify()
    if result.ok:
        print(f"ok: {result.checked} events, chain intact up to seq {result.head_seq}")
        return 0
    print(f"BROKEN at seq {result.first_broken_seq}: {result.reason}", file=sys.stderr)
    return 1


def _migrate(settings: Settings, args) -> int:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    from .log import make_engine, migrate

    where = sa.engine.make_url(settings.log_url).render_as_string(hide_password=True)
    engine = make_engine(settings.log_url)
    try:
        with engine.connect() as conn:
            before = MigrationContext.configure(conn).get_current_revision()
        migrate(engine)
        with engine.connect() as conn:
            after = MigrationContext.configure(conn).get_current_revision()
    except sa.exc.OperationalError as err:
        reason = str(err.orig or err).strip().splitlines()[0]
        print(f"commandpost: cannot migrate {where}: {reason}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if before == after:
        print(f"commandpost: schema up to date at {where} (revision {after})")
    else:
        print(f"commandpost: schema migrated from {before or 'empty'} to {after} at {where}")
    return 0


def main(argv: list[str] | None = None, environ=None) -> int:
    parser = argparse.ArgumentParser(prog="commandpost", description="Joint police/fire/EMS command centre backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (embedded default: SQLite + in-process bus + demo city)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    token = sub.add_parser("token", help="print a signed bearer token")
    token.add_argument("--role", required=True, choices=["dispatcher", "unit", "commander", "admin"])
    token.add_argument("--agency", help="limit the token to one agency")
    token.add_argument("--unit", help="the unit a unit token speaks for")
    token.add_argument("--subject", help="who holds it (default: the role or unit)")
    token.add_argument("--ttl-hours", type=float, help="expiry (default: none)")
    imp = sub.add_parser("import", help="load a real city from a TOML manifest into a fresh database")
    imp.add_argument("manifest")
    sub.add_parser("verify", help="check the event log's hash chain end to end")
    sub.add_parser("migrate", help="bring the database to the latest schema (run once before the nodes start)")
    args = parser.parse_args(argv)
    try:
        settings = from_env(os.environ if environ is None else environ)
        handler = {"serve": _serve, "token": _token, "import": _import, "verify": _verify,
                   "migrate": _migrate}[args.command]
        return handler(settings, args)
    except ValueError as err:
        print(f"commandpost: {err}", file=sys.stderr)
        return 2
