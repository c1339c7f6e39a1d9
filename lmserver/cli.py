"""The ``lmserver`` command.

    lmserver serve [--config PATH] [--data-dir DIR] [--host H] [--port P] [--demo]
    lmserver user add NAME --role owner|moderator|assistant [--config PATH] [--data-dir DIR]
    lmserver user passwd NAME [--config PATH] [--data-dir DIR]
    lmserver stream-key [--rotate] [--config PATH] [--data-dir DIR]
    lmserver init [DIR] [--force]
    lmserver tls self-signed [--name HOST]... [--ip ADDR]... [--dir DIR] [--config PATH] [--data-dir DIR]
    lmserver systemd-unit [--user NAME] [--config PATH] [--data-dir DIR]

Passwords are asked twice on a terminal, or read from the first line of stdin otherwise. The config
file is ``--config``, else ``$LMSERVER_CONFIG``, else ``./config.toml`` when it exists.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import Config, ConfigError, load_config


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="configuration file (TOML); default $LMSERVER_CONFIG or ./config.toml")
    p.add_argument("--data-dir", help="data directory (overrides server.data_dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmserver", description="Self-hosted LIVE Manager for live shopping.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the studio server")
    _common(serve)
    serve.add_argument("--host", help="address to listen on (overrides server.host)")
    serve.add_argument("--port", type=int, help="port (overrides server.port)")
    serve.add_argument("--demo", action="store_true", help="seed a demo studio (owner account, products, an event) on first start")
    user = sub.add_parser("user", help="manage staff accounts")
    usub = user.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="create a staff account")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["owner", "moderator", "assistant"])
    _common(add)
    pw = usub.add_parser("passwd", help="set a staff account's password")
    pw.add_argument("name")
    _common(pw)
    key = sub.add_parser("stream-key", help="print (or rotate) the studio's stream key for WHIP/OBS")
    key.add_argument("--rotate", action="store_true",
                     help="replace the key; the old one stops working, and a running server ends a stream published with it"
                          " within a few seconds (to keep such a stream, rotate in the settings page instead)")
    _common(key)
    init = sub.add_parser("init", help="write the commented default config.toml for a new studio to edit")
    init.add_argument("dir", nargs="?", default=".", help="folder to write config.toml into (default: the current one)")
    init.add_argument("--force", action="store_true", help="replace an existing config.toml")
    tls = sub.add_parser("tls", help="TLS certificates for serving HTTPS directly")
    tsub = tls.add_subparsers(dest="tls_command", required=True)
    selfsigned = tsub.add_parser("self-signed", help="make a studio CA and a certificate for this machine's names and addresses")
    selfsigned.add_argument("--name", action="append", default=[], help="a host name the studio uses (repeatable; default: localhost and this machine's names)")
    selfsigned.add_argument("--ip", action="append", default=[], help="an address the studio uses (repeatable; default: this machine's addresses)")
    selfsigned.add_argument("--dir", help="where to write the files (default: <data dir>/tls)")
    _common(selfsigned)
    unit = sub.add_parser("systemd-unit", help="print a systemd unit that runs this install as a service")
    unit.add_argument("--user", default="lmserver", help="the dedicated system user (default: lmserver)")
    unit.add_argument("--config", default="/etc/lmserver/config.toml", help="config file of the service (default: /etc/lmserver/config.toml)")
    unit.add_argument("--data-dir", default="/var/lib/lmserver", help="data directory of the service (default: /var/lib/lmserver)")
    return parser


def _config(args: argparse.Namespace, extra: dict[str, Any] | None = None) -> Config:
    path = args.config or os.environ.get("LMSERVER_CONFIG")
    if path is None and Path("config.toml").exists():
        path = "config.toml"
    server: dict[str, Any] = dict(extra or {})
    if args.data_dir:
        server["data_dir"] = args.data_dir
    return load_config(path, overrides={"server": server} if server else None)


def _read_password(confirm: bool = True) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat the password: ") != first:
            raise SystemExit("error: the two passwords differ; nothing was changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _with_db(cfg: Config, fn: Any) -> Any:
    from .db import DB_FILENAME, Database, run_migrations
    from .migrations import MIGRATIONS

    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.data_dir / DB_FILENAME
    run_migrations(path, MIGRATIONS)
    db = Database(path)
    await db.open()
    try:
        return await fn(db)
    finally:
        await db.close()


def cmd_user_add(args: argparse.Namespace) -> int:
    from . import auth
    from .errors import ApiError

    cfg = _config(args)
    password = _read_password()
    try:
        asyncio.run(_with_db(cfg, lambda db: auth.create_user(db, args.name, args.role, password,
                                                               min_password_length=cfg.security.min_password_length)))
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"created {args.role} {args.name!r} in {cfg.data_dir}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from . import auth
    from .errors import ApiError

    cfg = _config(args)
    password = _read_password()

    async def run(db: Any) -> int:
        auth.check_new_password(password, cfg.security.min_password_length)
        async with db.transaction() as tx:
            cur = await tx.execute("UPDATE users SET password_hash = ? WHERE name = ?", (auth.hash_password(password), args.name))
            if cur.rowcount == 0:
                return 1
            await tx.execute("DELETE FROM staff_sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)", (args.name,))
        return 0

    try:
        rc = asyncio.run(_with_db(cfg, run))
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if rc:
        print(f"error: no user named {args.name!r}", file=sys.stderr)
        return 2
    print(f"password of {args.name!r} changed; their sessions were logged out")
    return 0


def cmd_stream_key(args: argparse.Namespace) -> int:
    from . import auth

    from .media.ingest_whip import KEY_CHECK_SECONDS

    cfg = _config(args)
    key = asyncio.run(_with_db(cfg, auth.rotate_stream_key if args.rotate else auth.stream_key))
    print(key)
    if args.rotate:  # the server re-reads the key while a stream published with one is live
        print(f"a server running on {cfg.data_dir} ends a stream published with the old key within {KEY_CHECK_SECONDS:.0f} s",
              file=sys.stderr)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .deploy import write_config

    try:
        path = write_config(Path(args.dir), force=args.force)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: edit it, then run `lmserver serve --config {path}` "
          f"(or `lmserver serve` from {path.parent}, where ./config.toml is read)")
    return 0


def cmd_tls(args: argparse.Namespace) -> int:
    from .deploy import TRUST_HOWTO, make_self_signed, spki_hash

    cfg = _config(args)
    folder = Path(args.dir) if args.dir else cfg.data_dir / "tls"
    try:
        files = make_self_signed(folder, args.name or None, args.ip or None, studio=cfg.server.studio_name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"certificate for {', '.join(files.names + files.addresses)}")
    print(f"  {files.cert}\n  {files.key}\n  studio CA: {files.ca_cert} (its key {files.ca_key} stays on this machine)\n")
    print(f"Serve HTTPS with, in config.toml:\n  [server]\n  tls_cert = \"{files.cert.resolve()}\"\n  tls_key = \"{files.key.resolve()}\"\n"
          "  [security]\n  cookie_secure = true\n")
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cn = x509.load_pem_x509_certificate(files.ca_cert.read_bytes()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    print(TRUST_HOWTO.format(ca=files.ca_cert, cn=cn, spki=spki_hash(files.cert.read_bytes())))
    return 0


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    from .deploy import systemd_unit

    print(systemd_unit(user=args.user, config=args.config, data_dir=args.data_dir), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .app import create_app
    from .deploy import ssl_context

    extra: dict[str, Any] = {}
    if args.host:
        extra["host"] = args.host
    if args.port is not None:
        extra["port"] = args.port
    cfg = _config(args, extra)
    if args.demo and not cfg.server.data_dir:  # the demo studio lives in ./data (the checkout's, for `make run`)
        cfg = cfg.replace(server={"data_dir": "data"})
    ssl = ssl_context(cfg)
    logging.basicConfig(level=cfg.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = create_app(cfg)
    if args.demo:
        from .demo import demo_ctx

        app.cleanup_ctx.append(demo_ctx)
    host = cfg.server.host
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    scheme = "https" if ssl else "http"
    print(f"lmserver: studio at {scheme}://{shown}:{cfg.server.port}/  (data in {cfg.data_dir}; config: {cfg.source}; Ctrl+C to stop)", flush=True)
    web.run_app(app, host=host, port=cfg.server.port, print=None, access_log=None, ssl_context=ssl)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "user":
            return cmd_user_add(args) if args.user_command == "add" else cmd_user_passwd(args)
        if args.command == "stream-key":
            return cmd_stream_key(args)
        if args.command == "init":
            return cmd_init(args)
        if args.command == "tls":
            return cmd_tls(args)
        if args.command == "systemd-unit":
            return cmd_systemd_unit(args)
    except ConfigError as exc:
        print(f"lmserver: configuration error: {exc}", file=sys.stderr)
        return 2
    return 1
