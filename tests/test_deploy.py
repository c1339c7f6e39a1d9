"""Installing and running as a service: the shipped config as package data, ``lmserver init``, the
per-user data directory, ``lmserver systemd-unit``, ``lmserver tls self-signed`` and ``[server] tls_*``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import ssl
import threading
from pathlib import Path

import pytest

from lmserver.config import Config, ConfigError, load_config, user_data_dir
from lmserver.deploy import make_self_signed, shipped_config, ssl_context, systemd_unit
from tests.test_cli import run

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_package_data_equal_to_the_root_file() -> None:
    assert shipped_config() == (ROOT / "config.toml").read_text()


def test_init_writes_the_commented_default_config(tmp_path: Path) -> None:
    r = run(["init", "studio"], tmp_path)
    assert r.returncode == 0, r.stderr
    written = tmp_path / "studio" / "config.toml"
    assert written.read_text() == (ROOT / "config.toml").read_text()
    assert load_config(written, env={}) == Config(source=str(written))
    written.write_text("# mine\n")
    r = run(["init", "studio"], tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr and written.read_text() == "# mine\n"
    assert run(["init", "studio", "--force"], tmp_path).returncode == 0
    assert written.read_text() == (ROOT / "config.toml").read_text()


def test_data_dir_defaults_to_the_per_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Config().data_dir == tmp_path / "xdg" / "lmserver" == user_data_dir()
    assert user_data_dir({"HOME": "/home/ana"}) == Path.home() / ".local" / "share" / "lmserver"
    assert load_config(env={"LMSERVER_SERVER_DATA_DIR": str(tmp_path / "d")}).data_dir == tmp_path / "d"
    r = run(["stream-key"], tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "xdg" / "lmserver" / "lmserver.sqlite3").exists()


def test_systemd_unit_for_this_install() -> None:
    unit = systemd_unit()
    lines = unit.splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start.endswith(" serve --config /etc/lmserver/config.toml --data-dir /var/lib/lmserver")
    assert Path(exec_start.split("=", 1)[1].split()[0]).exists()  # this install's lmserver (or python)
    for line in ("User=lmserver", "StateDirectory=lmserver", "Restart=on-failure", "WantedBy=multi-user.target"):
        assert line in lines
    custom = systemd_unit(user="studio", data_dir="/srv/lmserver")
    assert "User=studio" in custom and "ReadWritePaths=/srv/lmserver" in custom and "StateDirectory" not in custom
    r = run(["systemd-unit"], ROOT)
    assert r.returncode == 0 and "[Service]" in r.stdout


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd's own parser finds no unknown key or bad value (it reports them on stderr and goes on)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # systemd is part of every Debian/Ubuntu install; a container without it has no use for the unit
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "lmserver.service"
    unit.write_text(systemd_unit())
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if str(unit) in line]
    assert problems == [], problems


def test_tls_keys_go_together_and_bad_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'server.tls_cert' and 'server.tls_key' go together"):
        load_config(env={}, overrides={"server": {"tls_cert": "a.crt"}})
    (tmp_path / "bad.crt").write_text("not a certificate")
    cfg = load_config(env={}, overrides={"server": {"tls_cert": str(tmp_path / "bad.crt"), "tls_key": str(tmp_path / "bad.crt")}})
    with pytest.raises(ConfigError, match="PEM certificate"):
        ssl_context(cfg)
    r = run(["serve", "--data-dir", "d"], tmp_path, env={"LMSERVER_SERVER_TLS_CERT": "none.crt", "LMSERVER_SERVER_TLS_KEY": "none.key"})
    assert r.returncode == 2 and "no such file 'none.crt'" in r.stderr and "lmserver tls self-signed" in r.stderr


def test_self_signed_certificate_verifies_against_the_studio_ca(tmp_path: Path) -> None:
    files = make_self_signed(tmp_path / "tls", ["studio.test"], ["127.0.0.1", "192.168.1.20"])
    ca_before = files.ca_cert.read_bytes()
    files = make_self_signed(tmp_path / "tls", ["studio.test", "other.test"], ["127.0.0.1"])
    assert files.ca_cert.read_bytes() == ca_before  # devices trust the CA once
    assert oct(files.key.stat().st_mode & 0o777) == "0o600" and oct(files.ca_key.stat().st_mode & 0o777) == "0o600"
    server_ctx = ssl_context(load_config(env={}, overrides={"server": {"tls_cert": str(files.cert), "tls_key": str(files.key)}}))
    assert server_ctx is not None
    for name in ("studio.test", "other.test", "127.0.0.1"):
        client_ctx = ssl.create_default_context(cafile=str(files.ca_cert))
        a, b = socket.socketpair()
        with a, b:
            server = server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
            t = threading.Thread(target=server.do_handshake, daemon=True)
            t.start()
            with client_ctx.wrap_socket(b, server_hostname=name) as client:  # raises when the name is not in the cert
                assert client.version()
            t.join(10)
            server.close()
    a, b = socket.socketpair()
    with a, b:
        server = server_ctx.wrap_socket(a, server_side=True, do_handshake_on_connect=False)
        t = threading.Thread(target=lambda: pytest.raises(ssl.SSLError, server.do_handshake), daemon=True)
        t.start()
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context(cafile=str(files.ca_cert)).wrap_socket(b, server_hostname="192.168.1.20")
        t.join(10)
        server.close()
    with pytest.raises(ValueError, match="not an IP address"):
        make_self_signed(tmp_path / "tls", ["a.test"], ["studio.test"])


def test_every_package_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists packages explicitly (built-in plugins install under another name): a new
    package folder without its line would be missing from the wheel."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    mapped = {v: k for k, v in tool["package-dir"].items()}
    found = set()
    for init in [*(ROOT / "lmserver").rglob("__init__.py"), *(ROOT / "plugins").rglob("__init__.py"), ROOT / "web" / "__init__.py"]:
        folder = init.parent.relative_to(ROOT).as_posix()
        top = next((m for m in mapped if folder == m or folder.startswith(m + "/")), None)
        found.add(mapped[top] + folder[len(top):].replace("/", ".") if top else folder.replace("/", "."))
    assert found <= listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lmserver"]
    for plugin in (ROOT / "plugins").iterdir():
        if (plugin / "__init__.py").exists():
            assert f"lmserver_plugins.{plugin.name}" in entry_points.values(), f"plugins/{plugin.name} has no entry point"
