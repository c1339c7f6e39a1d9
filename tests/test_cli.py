"""The command line: user add (password from stdin), passwd, stream-key, and startup errors that name the problem."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

LMSERVER = [sys.executable, "-m", "lmserver"]


def run(args: list[str], tmp_path: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
    full_env.update(env or {})
    return subprocess.run([*LMSERVER, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=full_env)


def test_user_add_reads_password_from_stdin(tmp_path: Path) -> None:
    data = tmp_path / "d"
    r = run(["user", "add", "hostess", "--role", "owner", "--data-dir", str(data)], tmp_path, "a long enough password\n")
    assert r.returncode == 0, r.stderr
    conn = sqlite3.connect(data / "lmserver.sqlite3")
    assert conn.execute("SELECT name, role FROM users").fetchall() == [("hostess", "owner")]
    r = run(["user", "add", "hostess", "--role", "moderator", "--data-dir", str(data)], tmp_path, "another long password\n")
    assert r.returncode == 2 and "already exists" in r.stderr
    r = run(["user", "add", "shorty", "--role", "moderator", "--data-dir", str(data)], tmp_path, "short\n")
    assert r.returncode == 2 and "at least 10 characters" in r.stderr
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
    r = run(["user", "passwd", "hostess", "--data-dir", str(data)], tmp_path, "a brand new password\n")
    assert r.returncode == 0, r.stderr


def test_stream_key_print_and_rotate(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    first = run(["stream-key", "--data-dir", data], tmp_path).stdout.strip()
    assert first.startswith("lms_") and run(["stream-key", "--data-dir", data], tmp_path).stdout.strip() == first
    rotated = run(["stream-key", "--rotate", "--data-dir", data], tmp_path).stdout.strip()
    assert rotated != first and run(["stream-key", "--data-dir", data], tmp_path).stdout.strip() == rotated


def test_bad_config_is_a_startup_error_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[media]\nmax_viewers = -3\n")
    r = run(["serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")], tmp_path)
    assert r.returncode == 2
    assert "'media.max_viewers' must be a positive integer, got -3" in r.stderr
    r = run(["serve", "--data-dir", str(tmp_path / "d")], tmp_path, env={"LMSERVER_SERVER_PORT": "http"})
    assert r.returncode == 2 and "'server.port' must be an integer" in r.stderr


def test_serve_demo_starts_and_the_printed_password_logs_in(tmp_path: Path) -> None:
    """What `make run` does: a demo studio whose owner password is printed once."""
    import json
    import re
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
    proc = subprocess.Popen([*LMSERVER, "serve", "--demo", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    try:
        password = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while password is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"user: host\s+password: (\S+)", line)
            password = m.group(1) if m else None
        assert password, "the demo owner's password was not printed"
        body = None
        for _ in range(50):  # the port opens right after the seed
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/login", data=json.dumps({"name": "host", "password": password}).encode(),
                                             headers={"Content-Type": "application/json"})
                body = json.loads(urllib.request.urlopen(req, timeout=5).read())
                break
            except OSError:
                time.sleep(0.2)
        assert body and body["user"]["role"] == "owner"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
