"""Configuration: built-in defaults → config file (TOML) → environment → validation.

Every key lives in one frozen dataclass section below, with its documentation and its check in the
field's metadata. The shipped ``config.toml`` at the repository root carries the same keys with a
comment each; a test checks that it loads equal to these defaults.

Environment variables are named ``LMSERVER_<SECTION>_<KEY>`` (``LMSERVER_SERVER_PORT=8080``); lists are
comma-separated (``LMSERVER_MEDIA_ICE_HOST_ADDRESSES=127.0.0.1,::1``). Unknown keys and bad values raise
:class:`ConfigError` with a message that names the key and says what is allowed.

Plugins read their own ``[plugins.NAME]`` table through :meth:`Config.plugin_config`; the
``[plugins] disabled = [...]`` list blocks plugins by name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

__all__ = ["Config", "ConfigError", "load_config", "SECTIONS", "user_data_dir"]


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is allowed."""


# ---------------------------------------------------------------------------------------------
# Checks: each returns None when fine, or the phrase that completes "'key' must be ..."


def positive(v: Any) -> str | None:
    return None if v > 0 else "a positive number" if isinstance(v, float) else "a positive integer"


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else "zero or more"


def port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "a TCP port between 0 and 65535 (0 picks a free one)"


def cidr_list(v: list[str]) -> str | None:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"a list of networks in CIDR notation such as \"10.0.0.0/8\" or \"::1/128\" ({item!r} is not one)"
    return None


def one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: str) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def between(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: float) -> str | None:
        return None if lo <= v <= hi else f"between {lo} and {hi}"

    return check


def even_between(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: int) -> str | None:
        return None if lo <= v <= hi and v % 2 == 0 else f"an even integer between {lo} and {hi}"

    return check


def ip_addresses(v: list[str]) -> str | None:
    for item in v:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            return f"a list of IP addresses (e.g. [\"127.0.0.1\"]); {item!r} is not one"
    return None


#: FFmpeg input formats a capture device may use (``media.capture_format``, ``FORMAT:DEVICE`` entries).
CAPTURE_DEVICE_FORMATS = ("v4l2", "avfoundation", "dshow")
#: URL schemes of network capture sources the owner may configure.
CAPTURE_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "http", "https")
_CAPTURE_ENTRY = ("a network URL (" + ", ".join(s + "://" for s in CAPTURE_URL_SCHEMES) + "host...) or FORMAT:DEVICE with FORMAT "
                  + ", ".join(CAPTURE_DEVICE_FORMATS) + " (v4l2 devices are under /dev/); files are never capture sources")


def capture_entry_problem(entry: str) -> str | None:
    """None when ``entry`` is a capture source the owner may configure, else what it must be."""
    if "://" in entry:
        scheme, rest = entry.split("://", 1)
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        ok = scheme.lower() in CAPTURE_URL_SCHEMES and host not in ("", ":") and not any(c.isspace() for c in entry)
        try:
            urlsplit(entry).port  # a port that is not a number
        except ValueError:
            ok = False
        return None if ok else _CAPTURE_ENTRY
    fmt, sep, device = entry.partition(":")
    if not sep or fmt not in CAPTURE_DEVICE_FORMATS or not device.strip():
        return _CAPTURE_ENTRY
    if fmt == "v4l2" and (not device.startswith("/dev/") or ".." in device):
        return _CAPTURE_ENTRY
    return None


def capture_entries(v: list[str]) -> str | None:
    for item in v:
        if capture_entry_problem(item):
            return f"a list of capture sources, each {_CAPTURE_ENTRY}; {item!r} is not one"
    return None


def time_zone(v: str) -> str | None:
    from .timefmt import zone_problem

    return zone_problem(v)


def opt(default: Any, doc: str, check: Callable[[Any], str | None] | None = None) -> Any:
    """A config field: its default, its one-line documentation and its check."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"doc": doc, "check": check})
    return field(default=default, metadata={"doc": doc, "check": check})


# ---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: the HTTP server."""

    host: str = opt("127.0.0.1", "Address to listen on; 0.0.0.0 to serve the whole studio network.")
    port: int = opt(8080, "TCP port of the web server.", port)
    data_dir: str = opt("", "Directory for the database, recordings and uploads (relative to the working directory); empty: the per-user data folder ($XDG_DATA_HOME/lmserver, else ~/.local/share/lmserver). `lmserver serve` prints it.")
    tls_cert: str = opt("", "PEM certificate file (with its chain) to serve HTTPS directly; empty: plain HTTP (e.g. behind a reverse proxy). `lmserver tls self-signed` makes one; see docs/deploy.md.")
    tls_key: str = opt("", "PEM private key of tls_cert; set both or neither.")
    public_url: str = opt("", "Base URL browsers use (for links, QR codes, calendar files; also an origin the CSRF check accepts: set it behind a reverse proxy, see docs/security.md); empty: taken from each request.")
    max_body_bytes: int = opt(10 * 1024 * 1024, "Largest request body accepted, in bytes.", positive)
    log_level: str = opt("info", "Log level.", one_of("debug", "info", "warning", "error"))
    studio_name: str = opt("My studio", "Name of the studio, shown on pages and to viewers.")
    timezone: str = opt("", "The studio's time zone, an IANA name (e.g. \"Europe/Paris\"): every page, event time, \"Go LIVE now\" title, e-mail, LIVE task week and best-time suggestion uses it; empty: this machine's zone. The owner can change it in Settings.", time_zone)


@dataclass(frozen=True)
class SecurityConfig:
    """``[security]``: accounts, sessions and throttling."""

    session_hours: float = opt(12.0, "How long a staff login lasts without activity, in hours.", positive)
    login_max_failures: int = opt(5, "Failed logins allowed per account and address before a lockout.", positive)
    login_lockout_seconds: int = opt(300, "How long a lockout lasts, in seconds.", positive)
    min_password_length: int = opt(10, "Shortest password accepted for a staff account.", between(8, 256))
    cookie_secure: bool = opt(False, "Mark cookies Secure (set true when served over HTTPS).")


@dataclass(frozen=True)
class CatalogConfig:
    """``[catalog]``: products and uploaded images."""

    max_image_bytes: int = opt(8 * 1024 * 1024, "Largest image upload, in bytes.", positive)
    max_image_pixels: int = opt(40_000_000, "Largest image, in pixels (width × height); guards against decompression bombs.", positive)
    default_currency: str = opt("USD", "Currency of new products (ISO 4217 code).")
    max_csv_rows: int = opt(5000, "Most rows one CSV import may hold.", positive)


@dataclass(frozen=True)
class MediaConfig:
    """``[media]``: ingest, program encoding and WebRTC delivery."""

    ice_host_addresses: list[str] = opt([], "Host addresses offered as ICE candidates; empty: the machine's own (127.0.0.1 is never offered unless listed).", ip_addresses)
    width: int = opt(1280, "Program width in pixels.", even_between(160, 3840))
    height: int = opt(720, "Program height in pixels.", even_between(120, 2160))
    fps: int = opt(30, "Program frame rate.", between(1, 60))
    video_bitrate: int = opt(2_000_000, "Program video bitrate, bits per second.", positive)
    audio_bitrate: int = opt(64_000, "Program Opus bitrate, bits per second.", positive)
    keyframe_interval: float = opt(2.0, "Seconds between regular keyframes.", positive)
    keyframe_min_interval: float = opt(0.5, "Shortest time between keyframes requested by viewers (rate limit), seconds.", non_negative)
    x264_preset: str = opt("superfast", "x264 preset of the program encoder.", one_of("ultrafast", "superfast", "veryfast", "faster", "fast"))
    max_viewers: int = opt(300, "Most WebRTC viewers served at once.", positive)
    viewer_queue_packets: int = opt(256, "Packets buffered per viewer before it skips to the next keyframe.", positive)
    record: bool = opt(True, "Record the program of every session to the data directory (a fragmented MP4 while live, remuxed to a fast-start MP4 when the session ends; no second encode).")
    recording_min_free_gb: float = opt(2.0, "Free space (GB) on the recordings disk below which the console warns, before going live and while recording; below half of it the recording stops (the LIVE goes on).", non_negative)
    recording_check_seconds: float = opt(30.0, "How often the free space is checked while recording, in seconds.", positive)
    recording_keep_days: int = opt(30, "Recordings older than this many days are deleted (at startup and after each session); 0: keep them.", non_negative)
    recording_max_total_gb: float = opt(100.0, "Most space (GB) all recordings may take; the oldest are deleted beyond it (at startup and after each session); 0: no limit.", non_negative)
    hls: bool = opt(True, "Also serve the LIVE as low-latency HLS at /hls/<event>/index.m3u8 (fMP4 segments of one keyframe interval made of parts, H.264 as encoded once and the shared AAC audio; no second video encode): the viewer page falls back to it when WebRTC fails or the server is full; a CDN can cache it.")
    hls_list_size: int = opt(6, "Segments listed in the HLS playlist (kept in memory; older ones are dropped).", between(3, 30))
    hls_part_seconds: float = opt(0.5, "Longest LL-HLS part (EXT-X-PART-INF PART-TARGET), seconds; parts are cut at frame boundaries and players stay about 3 parts behind (PART-HOLD-BACK).", between(0.1, 2.0))
    capture_format: str = opt("", "FFmpeg input format of capture_device: v4l2, avfoundation or dshow; empty for a network URL.", one_of("", *CAPTURE_DEVICE_FORMATS))
    capture_device: str = opt("", "The studio's capture source until the owner chooses another in the settings: a device (e.g. /dev/video0 with capture_format = \"v4l2\") or a network URL; empty: none.")
    capture_sources: list[str] = opt([], "More capture sources the owner allows, beside this machine's cameras: network URLs (rtsp, rtsps, rtmp, rtmps, srt, udp, http, https) or FORMAT:DEVICE with FORMAT v4l2, avfoundation or dshow (e.g. \"dshow:video=OBS Virtual Camera\"). Files are never capture sources.", capture_entries)
    capture_lavfi: bool = opt(False, "Offer FFmpeg's built-in test patterns (lavfi: colour bars with a tone) as capture sources; for tests and the demo.")
    max_sdp_bytes: int = opt(65536, "Largest SDP offer accepted, in bytes.", positive)
    fanout_processes: int = opt(1, "Extra processes that serve WHEP viewers once the main process has 50 (uses more cores); 0: all viewers in the main process.", between(0, 16))
    restream_ca_file: str = opt("", "Extra CA certificate (PEM file) trusted for rtmps:// restream destinations, beside the system's: for a self-signed TLS terminator; empty: the system's CAs only.")
    restream_queue_packets: int = opt(512, "Packets buffered per restream destination before it drops (and counts) them and skips to the next keyframe.", positive)


@dataclass(frozen=True)
class EventsConfig:
    """``[events]``: LIVE events and sessions."""

    default_duration_minutes: int = opt(60, "Duration of an event created by \"Go LIVE now\", in minutes.", between(30, 780))
    ready_minutes: int = opt(10, "Minutes before the start when an event's console becomes ready.", between(0, 120))
    resume_minutes: float = opt(10.0, "A session interrupted by a restart resumes if the studio goes live again within this many minutes.", non_negative)
    weekly_goal: int = opt(3, "LIVE task on the home page: non-practice sessions to run each week (Monday to Sunday, in the studio's time zone).", positive)
    monthly_goal: int = opt(12, "LIVE task on the home page: non-practice sessions to run each calendar month (in the studio's time zone).", positive)
    reminder_check_seconds: float = opt(15.0, "How often the server looks for events entering their ready window (to publish the reminder), in seconds.", positive)


@dataclass(frozen=True)
class LiveConfig:
    """``[live]``: viewers' interactions during a LIVE."""

    comment_max_length: int = opt(300, "Longest comment a viewer may send, in characters.", between(1, 5000))
    comment_rate_seconds: float = opt(2.0, "Shortest time between two comments of one viewer, in seconds.", non_negative)
    blocked_can_buy: bool = opt(True, "Whether a blocked viewer may still buy.")
    ws_queue_messages: int = opt(256, "Messages queued per WebSocket client before it is dropped as too slow.", positive)
    max_order_quantity: int = opt(20, "Most units of one product a viewer may buy in one order (also bounded by stock).", between(1, 10000))
    viewer_sample_seconds: float = opt(5.0, "How often the number of viewers of a live session is sampled for charts, in seconds.", positive)
    checkout_timeout_seconds: float = opt(120.0, "How long an order may stay reserved while its checkout runs; older reservations are released (units back to stock), in seconds.", positive)
    reconcile_seconds: float = opt(30.0, "How often the server looks for reserved orders whose checkout never finished, in seconds.", positive)
    idempotency_hours: float = opt(24.0, "How long a buyer's Idempotency-Key answers a retry with the first order, in hours.", positive)
    ask_buyer_details: bool = opt(True, "Whether the viewer page asks for the buyer's name, e-mail and shipping address before their first order (off when a checkout plugin's shop collects them).")


@dataclass(frozen=True)
class EmailConfig:
    """``[email]``: the SMTP server that sends registrants their reminders (10 minutes before the start, and when the LIVE starts)."""

    host: str = opt("", "SMTP server name or address; empty: no e-mail is sent (the registration page offers the calendar file).")
    port: int = opt(587, "SMTP port: 587 for STARTTLS, 465 for TLS from the start, 25 without encryption.", port)
    tls: str = opt("starttls", "Encryption: \"starttls\" (upgrade after connecting), \"tls\" (TLS from the start) or \"none\" (only for a server on this machine or a trusted network).", one_of("starttls", "tls", "none"))
    user: str = opt("", "SMTP login name; empty: send without logging in.")
    password: str = opt("", "SMTP password (better set from the environment: LMSERVER_EMAIL_PASSWORD); never shown back in the settings.")
    from_address: str = opt("", "The sender of the e-mails, e.g. \"Ana's studio <live@example.com>\"; empty: the user name, else lmserver@ the host.")
    timeout_seconds: float = opt(20.0, "How long one connection to the SMTP server may take, in seconds.", positive)
    max_attempts: int = opt(6, "How many times an e-mail is tried before it is given up (waits double each time, from 30 seconds).", between(1, 20))


@dataclass(frozen=True)
class PluginsConfig:
    """``[plugins]``: which plugins run, and each plugin's own ``[plugins.NAME]`` table."""

    disabled: list[str] = opt([], "Names of plugins not to load (as listed at /-/plugins).")


@dataclass(frozen=True)
class WebhooksConfig:
    """``[webhooks]``: delivery of bus events to the endpoints added in Settings -> Webhooks."""

    allow_networks: list[str] = opt([], "Private, loopback or link-local networks webhook endpoints may reach, as CIDR (e.g. [\"10.0.0.0/8\", \"127.0.0.1/32\"]); any other such address is refused (SSRF guard).", cidr_list)
    timeout_seconds: float = opt(10.0, "How long one delivery attempt may take before it counts as failed, in seconds.", between(1, 60))
    retry_base_seconds: float = opt(5.0, "The first retry's delay, in seconds; later retries wait longer (x6, x24, x120, ... up to 12 hours), with jitter.", positive)
    retry_hours: float = opt(72.0, "How long a message is retried before it is marked failed, in hours.", positive)
    keep_days: float = opt(14.0, "How long finished deliveries stay in the delivery log, in days.", positive)
    concurrency: int = opt(4, "Deliveries in flight at once per endpoint.", between(1, 32))


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "security": SecurityConfig,
    "catalog": CatalogConfig,
    "media": MediaConfig,
    "events": EventsConfig,
    "live": LiveConfig,
    "email": EmailConfig,
    "plugins": PluginsConfig,
    "webhooks": WebhooksConfig,
}


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    #: ``[plugins.NAME]`` tables, by plugin name.
    plugin_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: where the configuration came from (for messages); not a key
    source: str = "defaults"

    @property
    def data_dir(self) -> Path:
        """``server.data_dir``, or the per-user data folder when it is empty (see :func:`user_data_dir`)."""
        if not self.server.data_dir:
            return user_data_dir()
        return Path(self.server.data_dir).expanduser().resolve()

    def plugin_config(self, name: str) -> Mapping[str, Any]:
        """The ``[plugins.NAME]`` table of one plugin (empty when absent)."""
        return self.plugin_tables.get(name, {})

    def replace(self, **sections: Any) -> "Config":
        """A copy with some keys changed: ``cfg.replace(server={"port": 0})``."""
        return _build(self, {k: v for k, v in sections.items()}, origin="override")


def user_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user data folder, the default data directory: ``$XDG_DATA_HOME/lmserver``, else
    ``~/.local/share/lmserver`` (``%LOCALAPPDATA%/lmserver`` on Windows, ``~/Library/Application Support/lmserver``
    on macOS)."""
    env = os.environ if env is None else env
    if os.name == "nt" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / "lmserver"
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"]).expanduser().resolve() / "lmserver"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "lmserver"
    return Path.home() / ".local" / "share" / "lmserver"


# ---------------------------------------------------------------------------------------------
# Loading


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return "a list of strings"


def _coerce(key: str, tp: Any, value: Any, from_env: bool) -> Any:
    if from_env:
        raw = str(value).strip()
        try:
            if tp is bool:
                low = raw.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if tp is int:
                return int(raw)
            if tp is float:
                return float(raw)
            if tp is str:
                return raw
            return [p.strip() for p in raw.split(",") if p.strip()]
        except ValueError:
            raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {raw!r} (from the environment)") from None
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
        or (tp not in (bool, int, float, str) and isinstance(value, list) and all(isinstance(x, str) for x in value))
    )
    if not ok:
        raise ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(base: Config, layers: Mapping[str, Any], origin: str, from_env: bool = False) -> Config:
    sections: dict[str, Any] = {}
    plugin_tables = dict(base.plugin_tables)
    for section, values in layers.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown section '[{section}]' in {origin}; known sections: " + ", ".join(SECTIONS))
        if not isinstance(values, Mapping):
            raise ConfigError(f"'{section}' must be a table of keys")
        cls = SECTIONS[section]
        types = _field_types(cls)
        current = dataclasses.asdict(getattr(base, section))
        for key, value in values.items():
            full = f"{section}.{key}"
            if section == "plugins" and key != "disabled":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"'{full}' must be a table ([plugins.{key}]) of that plugin's settings")
                plugin_tables[key] = dict(value)
                continue
            if key not in types:
                raise ConfigError(f"unknown key '{full}' in {origin}; keys of [{section}]: " + ", ".join(types))
            current[key] = _coerce(full, types[key], value, from_env)
        sections[section] = cls(**current)
    return dataclasses.replace(base, **sections, plugin_tables=plugin_tables)


def _validate(cfg: Config) -> None:
    for section, cls in SECTIONS.items():
        obj = getattr(cfg, section)
        for f in dataclasses.fields(cls):
            check = f.metadata.get("check")
            value = getattr(obj, f.name)
            if check is not None:
                problem = check(value)
                if problem:
                    raise ConfigError(f"'{section}.{f.name}' must be {problem}, got {value!r}")
    if bool(cfg.server.tls_cert) != bool(cfg.server.tls_key):
        raise ConfigError("'server.tls_cert' and 'server.tls_key' go together: set both (HTTPS) or neither (plain HTTP)")
    media = cfg.media
    if media.capture_device:
        entry = f"{media.capture_format}:{media.capture_device}" if media.capture_format else media.capture_device
        problem = capture_entry_problem(entry)
        if problem:
            raise ConfigError(f"'media.capture_device' (with media.capture_format = {media.capture_format!r}) must be {problem},"
                              f" got {media.capture_device!r}")


def _env_layers(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    layers: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        if not name.startswith("LMSERVER_"):
            continue
        rest = name[len("LMSERVER_"):].lower()
        for section in SECTIONS:
            if rest.startswith(section + "_"):
                layers.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
        else:
            if rest in ("config",):  # LMSERVER_CONFIG names the file, handled by the CLI
                continue
            raise ConfigError(f"unknown environment variable {name}: expected LMSERVER_<SECTION>_<KEY> with a section among " + ", ".join(SECTIONS))
    return layers


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load the configuration: defaults → ``path`` (TOML) → ``env`` → ``overrides`` → validation.

    ``env`` defaults to ``os.environ``; pass ``{}`` to ignore the environment (tests do).
    ``overrides`` is what command-line flags set, e.g. ``{"server": {"port": 9000}}``.
    """
    cfg = Config()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        cfg = _build(cfg, data, origin=str(p))
        cfg = dataclasses.replace(cfg, source=str(p))
    cfg = _build(cfg, _env_layers(os.environ if env is None else env), origin="the environment", from_env=True)
    if overrides:
        cfg = _build(cfg, overrides, origin="the command line")
    _validate(cfg)
    return cfg


def describe() -> list[dict[str, Any]]:
    """Every key with its default and documentation (for docs and the settings page)."""
    out = []
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
            out.append({"key": f"{section}.{f.name}", "default": default, "doc": f.metadata["doc"]})
    return out
