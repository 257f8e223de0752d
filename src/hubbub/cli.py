"""The `hubbub` command: `hubbub serve` starts a node; `hubbub token` prints a dev token."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from hubbub import __version__
from hubbub.config import load_settings


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="path of hubbub.toml (default: ./hubbub.toml if present)")
    p.add_argument("--host", help="address to listen on (HUBBUB_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (HUBBUB_PORT, default 8000)")
    p.add_argument("--jwt-secret", help="HS256 secret of user tokens (HUBBUB_JWT_SECRET)")
    p.add_argument("--jwt-public-key", help="RS256/ES256 public key (HUBBUB_JWT_PUBLIC_KEY)")
    p.add_argument("--api-key", help="the server API key (HUBBUB_API_KEY)")
    p.add_argument("--broker", dest="broker_url", help="memory:// (HUBBUB_BROKER_URL)")
    p.add_argument(
        "--database-url", help="sqlite:///path or postgresql://... (HUBBUB_DATABASE_URL)"
    )
    p.add_argument("--data-dir", help="where files live (HUBBUB_DATA_DIR, default ./hubbub-data)")
    p.add_argument("--node-id", help="this node's name in a cluster (HUBBUB_NODE_ID)")
    dev = p.add_mutually_exclusive_group()
    dev.add_argument(
        "--dev",
        dest="dev",
        action="store_true",
        default=None,
        help="development mode (on by default when bound to loopback)",
    )
    dev.add_argument("--no-dev", dest="dev", action="store_false", help="production mode")
    p.add_argument("--log-level", default="info")


def _settings(args: argparse.Namespace) -> Any:
    keys = (
        "host",
        "port",
        "jwt_secret",
        "jwt_public_key",
        "api_key",
        "broker_url",
        "database_url",
        "data_dir",
        "node_id",
        "dev",
    )
    return load_settings(config_file=args.config, overrides={k: getattr(args, k) for k in keys})


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cmd_serve(args: argparse.Namespace) -> int:
    from hubbub.node import ConfigError, build_hub
    from hubbub.transport.server import serve_forever

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        hub = build_hub(_settings(args))
    except ConfigError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return 2
    s = hub.settings
    print(
        f"Hubbub {__version__} on http://{s.host}:{s.port}  (WebSocket: ws://{s.host}:{s.port}/ws)"
    )
    print(f"node {s.node_name}; broker {s.broker_url}; data in {s.data_dir}")
    if s.dev_mode:
        print('development mode: POST /api/dev/token {"user": "alice"} gives a token')
        print(f"API key: {s.api_key}")
    _install_uvloop()
    try:
        asyncio.run(serve_forever(hub))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from hubbub.node import ConfigError, build_hub

    try:
        hub = build_hub(_settings(args))
    except ConfigError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return 2
    claims: dict[str, Any] = {}
    if args.channels:
        claims["channels"] = args.channels
    if args.publish:
        claims["publish"] = args.publish
    print(hub.verifier.issue(args.user, ttl=args.ttl, **claims))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hubbub.engines.sql import open_store

    settings = _settings(args)

    async def upgrade() -> list[str]:
        store = await open_store(settings.database_url, settings.data_dir)
        try:
            return await store.upgrade()
        finally:
            await store.close()

    applied = asyncio.run(upgrade())
    print("applied: " + ", ".join(applied) if applied else "the database is up to date")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub", description="A real-time WebSocket hub.")
    parser.add_argument("--version", action="version", version=f"hubbub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start a node")
    _serve_args(serve)
    serve.set_defaults(func=cmd_serve)
    token = sub.add_parser("token", help="print a user token signed with this node's secret")
    _serve_args(token)
    token.add_argument("user")
    token.add_argument("--ttl", type=float, default=24 * 3600.0)
    token.add_argument("--channels", nargs="*", help="channel patterns it may subscribe to")
    token.add_argument("--publish", nargs="*", help="channel patterns it may publish to")
    token.set_defaults(func=cmd_token)
    from hubbub.bench import add_arguments as bench_arguments
    from hubbub.bench import cmd_bench

    bench = sub.add_parser("bench", help="run the benchmark suite against Hubbub and its peers")
    bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="run the migrations to the newest revision")
    _serve_args(upgrade)
    upgrade.set_defaults(func=cmd_db_upgrade)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
