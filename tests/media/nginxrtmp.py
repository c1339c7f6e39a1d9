"""Debian's nginx with libnginx-mod-rtmp (and the stream module as a TLS terminator) on loopback ports,
started and stopped by a test. Each publish is recorded to ``<dir>/rec/<name>-<stamp>.flv``."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
from pathlib import Path

import pytest

MODULES = Path("/usr/lib/nginx/modules")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (not for "localhost") and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "restream-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class NginxRtmp:
    """``rtmp://127.0.0.1:{port}/live/KEY`` (any key), ``/secure/KEY`` (only keys ``auth_url`` accepts),
    and ``rtmps://127.0.0.1:{tls_port}/live/KEY`` through the stream module's TLS terminator."""

    def __init__(self, directory: Path, *, auth_url: str = "") -> None:
        if shutil.which("nginx") is None or not (MODULES / "ngx_rtmp_module.so").exists():
            pytest.skip("needs Debian's nginx and libnginx-mod-rtmp (make test installs them)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rec").mkdir(exist_ok=True)
        self.port, self.tls_port = free_port(), free_port()
        self.cert, self.key = self_signed(self.dir)
        secure = f"on_publish {auth_url};" if auth_url else ""
        (self.dir / "nginx.conf").write_text(f"""
load_module {MODULES}/ngx_rtmp_module.so;
load_module {MODULES}/ngx_stream_module.so;
daemon off;
master_process off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log info;
events {{ worker_connections 64; }}
stream {{
  server {{
    listen 127.0.0.1:{self.tls_port} ssl;
    ssl_certificate {self.cert};
    ssl_certificate_key {self.key};
    proxy_pass 127.0.0.1:{self.port};
  }}
}}
rtmp {{
  server {{
    listen 127.0.0.1:{self.port};
    application live {{
      live on;
      record all;
      record_path {self.dir}/rec;
      record_unique on;
    }}
    application secure {{
      live on;
      {secure}
    }}
  }}
}}
""")
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "nginx", "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        for _ in range(100):  # bounded: up to 5 s for both ports
            if all(_listening(p) for p in (self.port, self.tls_port)):
                return
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"nginx did not start: {(self.dir / 'error.log').read_text()[-2000:]}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    def recordings(self, name: str) -> list[Path]:
        return sorted((self.dir / "rec").glob(f"{name}-*.flv"), key=lambda p: p.stat().st_mtime)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0
