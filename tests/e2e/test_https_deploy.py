"""HTTPS, as a studio deploys it (docs/deploy.md), with the real ``lmserver serve`` command and Chromium.

- ``test_go_live_over_https_from_another_address``: ``lmserver tls self-signed`` makes the studio's
  certificate; the server serves it itself (``[server] tls_cert``/``tls_key``) on 127.0.0.2, an address
  that is not ``localhost``; Chromium (which accepts the certificate through
  ``--ignore-certificate-errors-spki-list``) logs in, previews the fake camera and goes LIVE from the
  console; the program preview plays. Screenshot: ``console-https``.
- ``test_caddy_reverse_proxy``: the docs' Caddy example with its internal CA in front of lmserver on
  loopback; Chromium trusts that CA through the same flag, goes LIVE from the console and a viewer page
  plays the program, all through the proxy (media over UDP straight to lmserver).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import pytest

from lmserver.deploy import spki_hash
from tests.browser import CHROMIUM_ARGS, CHROMIUM, check_screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
DOCS_CADDYFILE = re.compile(r"```caddyfile\n(.*?)```", re.S)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def lmserver(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
    return subprocess.run([sys.executable, "-m", "lmserver", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


class Server:
    """``lmserver serve --demo`` in a subprocess; the demo owner's password read from its output."""

    def __init__(self, tmp: Path, config: str, health_url: str, cafile: Path | None) -> None:
        self.tmp, self.data = tmp, tmp / "data"
        (tmp / "config.toml").write_text(config)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LMSERVER_")}
        self.proc = subprocess.Popen([sys.executable, "-m", "lmserver", "serve", "--demo", "--config", "config.toml",
                                      "--data-dir", str(self.data)], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self.password = ""
        assert self.proc.stdout is not None
        for _ in range(200):  # the banner, then the demo's password line
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("lmserver exited:\n" + "".join(self.output))
            self.output.append(line)
            m = re.search(r"user: host\s+password: (\S+)", line)
            if m:
                self.password = m.group(1)
                break
        assert self.password, "".join(self.output)
        ctx = ssl.create_default_context(cafile=str(cafile)) if cafile else None
        for _ in range(300):  # bounded: 30 s
            try:
                with urllib.request.urlopen(health_url, timeout=5, context=ctx) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"{health_url} did not answer")
        with closing(sqlite3.connect(self.data / "lmserver.sqlite3")) as conn:
            self.event_id = conn.execute("SELECT id FROM events").fetchone()[0]

    def drain(self) -> str:
        """Stop the server; everything it printed."""
        self.stop()
        return "".join(self.output)

    def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            rest, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rest, _ = self.proc.communicate(timeout=10)
        self.output.append(rest or "")


FRAMES_JS = """(want) => new Promise((resolve) => {
  const v = document.querySelector(want.selector);
  let n = 0;
  const timer = setTimeout(() => resolve(n), want.ms);
  const cb = () => { n++; if (n >= want.frames) { clearTimeout(timer); resolve(n); } else v.requestVideoFrameCallback(cb); };
  v.requestVideoFrameCallback(cb);
})"""


async def frames(page: Any, selector: str, n: int) -> int:
    return int(await page.evaluate(FRAMES_JS, {"selector": selector, "frames": n, "ms": 60000}))


async def go_live_from_console(browser: Any, base: str, server: Server) -> tuple[Any, Any]:
    """Log in as the demo host, open the demo event's console, preview the fake camera, go LIVE."""
    ctx = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(base + "/login")
    assert await page.evaluate("window.isSecureContext")
    await page.fill("input[name=name]", "host")
    await page.fill("input[name=password]", server.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/")
    # the demo's event starts later: "Go LIVE now" makes one that starts now
    created = await page.evaluate("""() => fetch('/api/events/now', {method: 'POST', headers: {'X-CSRF-Token': LMS.csrf,
        'Content-Type': 'application/json'}, body: JSON.stringify({title: 'Studio over HTTPS'})}).then((r) => r.json())""")
    server.event_id = created["event"]["id"]
    await page.goto(f"{base}/events/{server.event_id}/console")
    await page.wait_for_function("document.body.dataset.ws === 'open'")
    await page.click("#preview-btn")
    await page.wait_for_function("document.querySelector('#camera-select').options.length > 0 && document.querySelector('#camera-select').value !== ''")
    assert await frames(page, "#local-preview", 5) >= 5
    await page.click("#golive-btn")
    try:
        await page.locator("#status-pill", has_text="LIVE").wait_for(timeout=30000)
    except Exception:
        raise AssertionError(f"not LIVE: {await page.text_content('#golive-error')!r}; server: {server.drain()}") from None
    assert await frames(page, "#program-preview", 10) >= 10
    assert errors == []
    return ctx, page


async def launch(pw: Any, *extra: str) -> Any:
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra])


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, str, Path]]:
    r = lmserver("tls", "self-signed", "--name", "studio.test", "--ip", "127.0.0.2", "--dir", "tls", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "--ignore-certificate-errors-spki-list=" in r.stdout and "Certificate Trust Settings" in r.stdout
    port = free_port("127.0.0.2")
    config = (f'[server]\nhost = "127.0.0.2"\nport = {port}\ntls_cert = "tls/server.crt"\ntls_key = "tls/server.key"\n'
              '[security]\ncookie_secure = true\n'
              '[media]\nice_host_addresses = ["127.0.0.2"]\nwidth = 320\nheight = 240\nvideo_bitrate = 500_000\n')
    base = f"https://127.0.0.2:{port}"
    server = Server(tmp_path, config, base + "/healthz", tmp_path / "tls" / "lmserver-ca.crt")
    try:
        assert any(f"studio at https://127.0.0.2:{port}/" in line for line in server.output), server.output
        yield server, base, tmp_path / "tls"
    finally:
        server.stop()


async def test_go_live_over_https_from_another_address(tls_server: tuple[Server, str, Path]) -> None:
    from playwright.async_api import async_playwright

    server, base, tls = tls_server
    spki = spki_hash((tls / "server.crt").read_bytes())
    async with async_playwright() as pw:
        browser = await launch(pw, f"--ignore-certificate-errors-spki-list={spki}")
        try:
            ctx, page = await go_live_from_console(browser, base, server)
            check_screenshot(await page.screenshot(), "console-https")
            await ctx.close()
        finally:
            await browser.close()


def caddyfile_from_docs(site: str, upstream: str, storage: Path, http_port: int) -> str:
    """The Caddyfile of docs/deploy.md's LAN example, with this test's address, ports and storage."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = DOCS_CADDYFILE.findall(text)
    assert blocks, "docs/deploy.md has no ```caddyfile example"
    lan = next(b for b in blocks if "tls internal" in b)
    lan = lan.replace("studio.lan", site).replace("127.0.0.1:8080", upstream)
    glob = (f"{{\n\tadmin off\n\tskip_install_trust\n\thttp_port {http_port}\n\tstorage file_system {storage}\n"
            "\tauto_https disable_redirects\n}\n")
    return glob + lan


@pytest.fixture
def caddy_proxy(tmp_path: Path) -> Iterator[tuple[Server, str, Path]]:
    caddy = shutil.which("caddy")
    assert caddy, "caddy is not installed: `make test` (or `apt-get install caddy`) installs it"
    lm_port, https_port, http_port = free_port(), free_port(), free_port()
    base = f"https://127.0.0.1:{https_port}"
    storage = tmp_path / "caddy"
    (tmp_path / "Caddyfile").write_text(caddyfile_from_docs(f"127.0.0.1:{https_port}", f"127.0.0.1:{lm_port}", storage, http_port))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    with open(tmp_path / "caddy.log", "w") as log:
        proxy = subprocess.Popen([caddy, "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
                                 cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log)
    server = None
    try:
        root = storage / "pki" / "authorities" / "local" / "root.crt"
        for _ in range(300):  # bounded: 30 s for Caddy to make its CA
            if root.exists() and (storage / "pki" / "authorities" / "local" / "intermediate.crt").exists():
                break
            assert proxy.poll() is None, (tmp_path / "caddy.log").read_text()
            time.sleep(0.1)
        config = (f'[server]\nport = {lm_port}\npublic_url = "{base}"\n[security]\ncookie_secure = true\n'
                  '[media]\nice_host_addresses = ["127.0.0.1"]\nwidth = 320\nheight = 240\nvideo_bitrate = 500_000\n')
        (tmp_path / "lm").mkdir()
        server = Server(tmp_path / "lm", config, base + "/healthz", root)
        yield server, base, storage / "pki" / "authorities" / "local"
    finally:
        if server:
            server.stop()
        proxy.terminate()
        try:
            proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(timeout=10)


async def test_caddy_reverse_proxy(caddy_proxy: tuple[Server, str, Path]) -> None:
    from playwright.async_api import async_playwright

    server, base, ca = caddy_proxy
    spkis = ",".join(spki_hash((ca / f).read_bytes()) for f in ("root.crt", "intermediate.crt"))
    async with async_playwright() as pw:
        browser = await launch(pw, f"--ignore-certificate-errors-spki-list={spkis}")
        try:
            ctx, page = await go_live_from_console(browser, base, server)
            # a viewer page plays the LIVE through the proxy
            with closing(sqlite3.connect(server.data / "lmserver.sqlite3")) as conn:
                slug = conn.execute("SELECT slug FROM events WHERE id = ?", (server.event_id,)).fetchone()[0]
            vctx = await browser.new_context()
            viewer = await vctx.new_page()
            await viewer.goto(f"{base}/e/{slug}")
            await viewer.wait_for_function("document.body.dataset.ws === 'open'")
            assert await frames(viewer, "#program", 15) >= 15
            await page.wait_for_function("parseInt(document.querySelector('#m-viewers').textContent, 10) >= 1")
            await vctx.close()
            await ctx.close()
        finally:
            await browser.close()
