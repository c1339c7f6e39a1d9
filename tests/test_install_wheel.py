"""Installed the way server software is installed: build the sdist and the wheel (``python -m build``),
install the wheel into a fresh virtualenv in a temporary folder (dependencies from the package index, no
source tree on the path), start ``lmserver serve --demo`` from another folder, and check that everything
the server needs came with the wheel: templates, static files, help pages, the built-in plugins' assets,
the shipped config (``lmserver init``)."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import pytest

from lmserver.media import rtpwire

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(600)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without lmserver's settings, Python paths or this checkout's virtualenv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LMSERVER_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "COV_"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT)))
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel built from it (what ``python -m build`` does), once per test session."""
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return {"sdist": next(out.glob("lmserver-*.tar.gz")), "wheel": next(out.glob("lmserver-*.whl"))}


@pytest.fixture(scope="session")
def venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and its dependencies from the package index) installed."""
    folder = tmp_path_factory.mktemp("venv")
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120, env=env)
    r = subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", str(dist["wheel"])],
                       capture_output=True, text=True, timeout=500, env=env, cwd=folder)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def wait_healthy(proc: subprocess.Popen[str], base: str) -> None:
    """Poll /healthz until it answers (at most 600 tries, 60 s), failing at once if the server exits."""
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
        try:
            if get(base + "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not answer /healthz within 60 s")


@pytest.fixture
def installed_server(venv: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    cwd = tmp_path / "studio"
    cwd.mkdir()
    proc = subprocess.Popen([str(venv / "bin" / "lmserver"), "serve", "--demo", "--port", str(port)], cwd=cwd,
                            env=clean_env(XDG_DATA_HOME=str(tmp_path / "xdg")), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(proc, base)
        yield {"base": base, "cwd": cwd, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def test_sdist_and_wheel_carry_the_assets(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
        assert whl.read("lmserver/config.toml").decode() == (ROOT / "config.toml").read_text()
    with tarfile.open(dist["sdist"]) as sdist:
        member = next(m for m in sdist.getmembers() if m.name.endswith("/lmserver/config.toml"))
        assert member.isfile(), "the sdist's lmserver/config.toml must be the file, not a symlink"
    for d in ("web/templates", "web/static"):
        for f in (ROOT / d).rglob("*"):
            if f.is_file():
                assert "lmserver/" + str(f.relative_to(ROOT)) in names, f"{f.relative_to(ROOT)} is not in the wheel"
    for plugin in (ROOT / "plugins").iterdir():
        for sub in ("templates", "static"):
            for f in (plugin / sub).rglob("*") if (plugin / sub).is_dir() else ():
                if f.is_file():
                    assert f"lmserver_plugins/{f.relative_to(ROOT / 'plugins')}" in names, f"{f.relative_to(ROOT)} is not in the wheel"
    assert "lmserver/web/templates/help/index.html" in names
    # the viewers' send loop in C: its source in the sdist, built into the wheel where a compiler is (as here)
    assert any(m.endswith("/lmserver/media/_sendloop.c") for m in sdist_names(dist["sdist"]))
    if rtpwire._sendloop is not None:
        assert any(n.startswith("lmserver/media/_sendloop.") and n.endswith(".so") for n in names), sorted(names)[:20]


def sdist_names(path: Path) -> list[str]:
    with tarfile.open(path) as sdist:
        return sdist.getnames()


def test_installed_wheel_serves_from_another_folder(installed_server: dict[str, Any], venv: Path) -> None:
    base, cwd = installed_server["base"], installed_server["cwd"]
    # the installed package, not this checkout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import lmserver, lmserver.web; print(lmserver.__file__); print(lmserver.web.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=cwd, env=clean_env(), check=True).stdout
    assert str(ROOT) not in where and "site-packages" in where, where
    if rtpwire._sendloop is not None:  # the installed server sends to viewers with the C loop
        accel = subprocess.run([str(venv / "bin" / "python"), "-c", "from lmserver.media import fastsend; print(fastsend.ACCEL)"],
                               capture_output=True, text=True, timeout=60, cwd=cwd, env=clean_env(), check=True).stdout
        assert accel.strip() == "True", accel

    status, ctype, body = get(base + "/healthz")
    assert status == 200 and "json" in ctype, body
    status, _, body = get(base + "/login")
    assert status == 200, body[:500]
    css = re.search(rb'href="(/static/css/app\.css[^"]*)"', body)
    assert css, "the login page links no stylesheet"
    status, ctype, body = get(base + css.group(1).decode())
    assert status == 200 and ctype.startswith("text/css") and b"{" in body

    # a viewer page of the demo event and its script
    with closing(sqlite3.connect(cwd / "data" / "lmserver.sqlite3")) as conn:
        slug = conn.execute("SELECT slug FROM events").fetchone()[0]
    status, _, body = get(f"{base}/e/{slug}")
    assert status == 200, body[:500]
    script = re.search(rb'src="(/static/js/[a-z]+\.js[^"]*)"', body)  # events.js before the LIVE, viewer.js during
    assert script, "the viewer page loads no script"
    status, ctype, body = get(base + script.group(1).decode())
    assert status == 200 and "javascript" in ctype and len(body) > 1000

    # the help pages and a built-in plugin's static file, listed at /-/plugins
    assert get(base + "/help")[0] == 200
    status, _, body = get(base + "/-/plugins")
    import json

    plugins = {p["name"]: p for p in json.loads(body)}
    assert plugins["billboard"]["static"] == "/-/static/plugins/billboard/"
    status, ctype, body = get(base + "/-/static/plugins/billboard/billboard.js")
    assert status == 200 and "javascript" in ctype

    # the demo keeps its data in ./data of the folder it runs from, and says where
    assert (cwd / "data" / "lmserver.sqlite3").exists()
    installed_server["proc"].terminate()
    out, _ = installed_server["proc"].communicate(timeout=30)
    assert f"data in {cwd / 'data'}" in out


def test_installed_init_and_per_user_data_dir(venv: Path, tmp_path: Path) -> None:
    lmserver = str(venv / "bin" / "lmserver")
    env = clean_env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    r = subprocess.run([lmserver, "init", "studio"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "studio" / "config.toml").read_text() == (ROOT / "config.toml").read_text()
    r = subprocess.run([lmserver, "init", "studio"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert r.returncode == 2 and "already exists" in r.stderr
    # without a data_dir, the server's data goes to the per-user data folder
    r = subprocess.run([lmserver, "stream-key", "--config", "studio/config.toml"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "xdg" / "lmserver" / "lmserver.sqlite3").exists()
