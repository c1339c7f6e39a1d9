"""Installing and running the server as a service: the shipped config, a systemd unit, TLS certificates.

- :func:`shipped_config` is the commented default ``config.toml`` (package data, the same text as the
  checkout's root file); ``lmserver init [DIR]`` writes it for a new studio to edit.
- :func:`systemd_unit` is the unit ``lmserver systemd-unit`` prints for the current install.
- :func:`make_self_signed` makes a studio CA and a server certificate for the studio's host names and
  addresses (``lmserver tls self-signed``); :func:`ssl_context` loads ``[server] tls_cert``/``tls_key``.

docs/deploy.md says how to use each of them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.resources
import ipaddress
import shlex
import shutil
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError

__all__ = ["shipped_config", "write_config", "systemd_unit", "make_self_signed", "spki_hash", "ssl_context", "TlsFiles"]


def shipped_config() -> str:
    """The commented default configuration, as shipped in the package (``lmserver/config.toml``)."""
    return importlib.resources.files("lmserver").joinpath("config.toml").read_text(encoding="utf-8")


def write_config(folder: Path, force: bool = False) -> Path:
    """Write the shipped ``config.toml`` into ``folder`` (created); refuse to overwrite unless ``force``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists: edit it, or pass --force to replace it with the defaults")
    path.write_text(shipped_config(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- systemd


def lmserver_command() -> list[str]:
    """How to start this install's ``lmserver``: its console script beside the interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("lmserver")
    if script.exists():
        return [str(script)]
    found = shutil.which("lmserver")
    return [found] if found else [sys.executable, "-m", "lmserver"]


def systemd_unit(user: str = "lmserver", config: str = "/etc/lmserver/config.toml", data_dir: str = "/var/lib/lmserver") -> str:
    """A systemd unit that runs this install as ``user`` with its data in ``data_dir``, restarted on failure."""
    exec_start = shlex.join([*lmserver_command(), "serve", "--config", config, "--data-dir", data_dir])
    state = data_dir.removeprefix("/var/lib/") if data_dir.startswith("/var/lib/") else ""
    conf = config.removeprefix("/etc/").split("/", 1)[0] if config.startswith("/etc/") and config.count("/") == 3 else ""
    lines = [
        "# lmserver as a system service (written by `lmserver systemd-unit`; see docs/deploy.md).",
        f"# Install: sudo useradd --system --home-dir {data_dir} --shell /usr/sbin/nologin {user}",
        f"#          sudo mkdir -p {Path(config).parent} && sudo lmserver init {Path(config).parent}",
        "#          this file as /etc/systemd/system/lmserver.service, then",
        "#          sudo systemctl daemon-reload && sudo systemctl enable --now lmserver",
        f"#          sudo -u {user} {shlex.join(lmserver_command())} user add NAME --role owner --config {config} --data-dir {data_dir}",
        "[Unit]",
        "Description=lmserver, the self-hosted LIVE Manager",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"Group={user}",
        "# v4l2 cameras and capture cards for a local capture source",
        "SupplementaryGroups=video",
        f"ExecStart={exec_start}",
    ]
    if state:
        lines += [f"# creates {data_dir} owned by {user}", f"StateDirectory={state}", "StateDirectoryMode=0700"]
    else:
        lines += [f"ReadWritePaths={data_dir}"]
    if conf:
        lines += [f"ConfigurationDirectory={conf}"]
    lines += [
        "Restart=on-failure",
        "RestartSec=3",
        "# SIGTERM shuts the server down in order (plugins, connections, then the database)",
        "TimeoutStopSec=30",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    names: tuple[str, ...]
    addresses: tuple[str, ...]


def machine_addresses() -> list[str]:
    """The machine's own IP addresses (every interface, loopback included), for the certificate."""
    out = ["127.0.0.1", "::1"]
    try:
        import ifaddr  # aioice's dependency

        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                addr = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
                try:
                    parsed = ipaddress.ip_address(addr)
                except ValueError:
                    continue
                if not parsed.is_link_local and str(parsed) not in out:
                    out.append(str(parsed))
    except Exception:  # an unusual network stack: the loopback addresses still work
        pass
    return out


def machine_names() -> list[str]:
    host = socket.gethostname()
    names = ["localhost"]
    for n in (host, host.split(".")[0] + ".local"):
        if n and n not in names:
            names.append(n)
    return names


def spki_hash(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of a certificate: Chromium's ``--ignore-certificate-errors-spki-list``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def make_self_signed(folder: Path, names: list[str] | None = None, addresses: list[str] | None = None, studio: str = "lmserver") -> TlsFiles:
    """Make (or reuse) a studio CA in ``folder`` and a new server certificate signed by it.

    The CA (``lmserver-ca.crt``) is what phones, tablets and other laptops trust once; the server
    certificate (``server.crt``/``server.key``) names ``names`` and ``addresses`` (default: this machine's
    host names and addresses) and can be remade whenever they change without trusting anything again.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = list(dict.fromkeys(names or machine_names()))
    addresses = list(dict.fromkeys(addresses or machine_addresses()))
    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            raise ValueError(f"{a!r} is not an IP address (host names go in --name)") from None
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    pem = serialization.Encoding.PEM
    ca_cert_path, ca_key_path = folder / "lmserver-ca.crt", folder / "lmserver-ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, studio),
                             x509.NameAttribute(NameOID.COMMON_NAME, f"lmserver CA: {studio} ({socket.gethostname()})")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(ca_key_path, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        ca_cert_path.write_bytes(ca_cert.public_bytes(pem))
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else addresses[0])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=397))  # Apple's limit for TLS server certificates
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    _write_private(key_path, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))  # the chain: server, then CA
    return TlsFiles(ca_cert_path, ca_key_path, cert_path, key_path, tuple(names), tuple(addresses))


TRUST_HOWTO = """\
Trust the studio CA once on every device that opens the console or goes live (browsers capture a camera
only on localhost or over HTTPS). Copy {ca} to the device (AirDrop, e-mail, USB, or serve it), then:
  iPhone/iPad: open the file -> Settings -> Profile Downloaded -> Install; then Settings -> General ->
               About -> Certificate Trust Settings -> turn on "{cn}".
  Android:     Settings -> Security -> Encryption & credentials -> Install a certificate -> CA certificate.
  Windows:     double-click -> Install Certificate -> Local Machine -> "Trusted Root Certification Authorities".
  macOS:       open it in Keychain Access (System), then Get Info -> Trust -> "Always Trust".
  Linux:       sudo cp {ca} /usr/local/share/ca-certificates/lmserver-ca.crt && sudo update-ca-certificates
               (Chromium/Firefox: Settings -> Privacy and security -> Manage certificates -> Authorities -> Import).
For a quick test without trusting anything, Chromium accepts this server certificate with
  --ignore-certificate-errors-spki-list={spki}
"""


def ssl_context(cfg: Config) -> ssl.SSLContext | None:
    """The server's SSL context from ``[server] tls_cert``/``tls_key``; ``None`` for plain HTTP."""
    if not cfg.server.tls_cert:
        return None
    for key in ("tls_cert", "tls_key"):
        path = getattr(cfg.server, key)
        if not Path(path).is_file():
            raise ConfigError(f"'server.{key}': no such file {path!r} (make one with `lmserver tls self-signed`)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.server.tls_cert, cfg.server.tls_key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"'server.tls_cert'/'server.tls_key' cannot be loaded ({exc}): they must be a PEM certificate and its PEM private key") from None
    return ctx
