"""The 20-line verifier of docs/giveaways.md, run as written against a real draw's proof."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.plugins.test_giveaway import API, body, client, end_countdown, make_app, ok, watcher  # noqa: F401 (fixtures)
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh

DOC = Path(__file__).resolve().parents[2] / "docs" / "giveaways.md"


def verifier() -> str:
    block = re.search(r"```python\n(# verify_giveaway\.py.*?)```", DOC.read_text(), re.S)
    assert block, "docs/giveaways.md lost its verifier"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 21, "the verifier is meant to stay about 20 lines"
    return code


async def test_the_documented_verifier_checks_a_real_draw(client: Any, watcher: Any, tmp_path: Path) -> None:
    app = client.app
    staff = await staff_cookie(client)
    event = await make_event(app)
    pid = await make_product(app, stock=10, event_id=event)
    await go_live(app, event)
    gid = (await ok(await client.post(f"{API}/giveaways", json=body(pid, event_id=event, entry_mode="none", keyword=""),
                                      headers=staff), 201))["giveaway"]["id"]
    await ok(await client.post(f"{API}/giveaways/{gid}/start", headers=staff))
    for n in range(7):
        await ok(await client.post(f"{API}/giveaways/{gid}/enter", headers=vh(await new_viewer(app, f"v{n}"))))
    await end_countdown(app, watcher, gid)
    proof = await ok(await client.get(f"{API}/giveaways/{gid}/proof"))
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    (tmp_path / "verify_giveaway.py").write_text(verifier())
    run = subprocess.run([sys.executable, "verify_giveaway.py", "proof.json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "draw 1: winners" in run.stdout and "check out" in run.stdout, run.stderr

    # a tampered proof fails
    proof["giveaway"]["draws"][0]["winners"].reverse()
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    run = subprocess.run([sys.executable, "verify_giveaway.py", "proof.json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "differ" in run.stderr
