"""Configuration: defaults, file, environment, validation, and the shipped config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmserver.config import Config, ConfigError, describe, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_file_equals_builtin_defaults() -> None:
    shipped = load_config(ROOT / "config.toml", env={})
    assert {k: v for k, v in vars(shipped).items() if k != "source"} == {k: v for k, v in vars(Config()).items() if k != "source"}


def test_every_key_is_commented_in_the_shipped_file() -> None:
    lines = (ROOT / "config.toml").read_text().splitlines()
    for item in describe():
        key = item["key"].split(".", 1)[1]
        idx = next((i for i, line in enumerate(lines) if line.startswith(f"{key} = ")), None)
        assert idx is not None, f"{item['key']} missing from config.toml"
        assert lines[idx - 1].startswith("#"), f"{item['key']} has no comment in config.toml"


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[media]\nfps = 25\n[plugins.hello]\ngreeting = "hi"\n')
    cfg = load_config(f, env={"LMSERVER_SERVER_PORT": "9100", "LMSERVER_MEDIA_ICE_HOST_ADDRESSES": "127.0.0.1, ::1",
                              "LMSERVER_MEDIA_RECORD": "false"}, overrides={"server": {"host": "127.0.0.1"}})
    assert cfg.server.port == 9100
    assert cfg.server.host == "127.0.0.1"
    assert cfg.media.fps == 25
    assert cfg.media.ice_host_addresses == ["127.0.0.1", "::1"]
    assert cfg.media.record is False
    assert cfg.plugin_config("hello") == {"greeting": "hi"}
    assert cfg.plugin_config("absent") == {}


@pytest.mark.parametrize("toml, message", [
    ("[media]\nmax_viewers = -3\n", "'media.max_viewers' must be a positive integer, got -3"),
    ("[media]\nwidht = 640\n", "unknown key 'media.widht'"),
    ("[nope]\nx = 1\n", "unknown section '[nope]'"),
    ("[server]\nport = \"80\"\n", "'server.port' must be an integer, got '80'"),
    ("[server]\nport = 70000\n", "'server.port' must be a TCP port"),
    ("[media]\nice_host_addresses = [\"localhost\"]\n", "'media.ice_host_addresses' must be a list of IP addresses"),
    ("[media]\nwidth = 641\n", "'media.width' must be an even integer"),
    ("[media]\nx264_preset = \"slow\"\n", "'media.x264_preset' must be one of"),
    ("[plugins]\ndisabled = \"billboard\"\n", "'plugins.disabled' must be a list of strings"),
    ("[plugins]\nhello = 3\n", "'plugins.hello' must be a table"),
    ("[server\n", "is not valid TOML"),
])
def test_bad_config_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as exc:
        load_config(f, env={})
    assert message in str(exc.value)


def test_bad_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="'server.port' must be an integer, got 'eighty'"):
        load_config(None, env={"LMSERVER_SERVER_PORT": "eighty"})
    with pytest.raises(ConfigError, match="unknown environment variable LMSERVER_BOGUS_X"):
        load_config(None, env={"LMSERVER_BOGUS_X": "1"})
    with pytest.raises(ConfigError, match="unknown key 'server.prot'"):
        load_config(None, env={"LMSERVER_SERVER_PROT": "1"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("/nonexistent/lmserver.toml", env={})
