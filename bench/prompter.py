"""``python -m bench.prompter``: what the prompter plugin costs.

1. Rule evaluation: a scripted LIVE with 1000 viewers (joining, leaving) and 50 comments/s (some with
   links, questions, repeats) for 120 simulated seconds: every comment through the plugin's
   ``moderate_comment`` and its bus rule, every viewer/health/order record through the bus rule, and
   one ``tick`` evaluation a second (all window rules and LIVE diagnosis). The CPU time it took, divided
   by the simulated time, is the share of one core the prompter adds (target ≤ 0.05). Findings' storage
   is not included (a finding is written when it appears, changes or resolves: a few per minute).
2. The video checks: :class:`lmserver.media.framestats.FrameStats` per 720p frame (target ≤ 0.1 ms),
   measured on every frame (``every=1``) and as the program runs it (every other frame).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import av
import numpy as np

from bench.report import machine, write_section
from lmserver.api import Activity
from lmserver.media.framestats import FrameStats
from lmserver_plugins import prompter
from lmserver_plugins.prompter.engine import Live
from lmserver_plugins.prompter.settings import Settings

VIEWERS, RATE, SECONDS = 1000, 50, 120
BODIES = ["love it", "how much is the blue one?", "price?", "wow", "does it ship to Canada?", "nice colour",
          "cheap at https://spam.example", "I'll take 2", "size M please", "call 0612345678", "so pretty", "🔥🔥🔥"]


def record(name: str, data: dict[str, Any], at: float) -> Activity:
    return Activity(None, name, 1, 1, False, at, data)


async def rules_cost(seed: int = 1) -> dict[str, Any]:
    rng = random.Random(seed)
    state = prompter.State(Settings())
    app: dict[Any, Any] = {prompter.STATE: state}  # the hooks read only their state here (no finding is stored)
    t0 = 1_000_000.0
    state.live = live = Live(session_id=1, event_id=1, started_at=t0,
                             bag=[{"id": i, "title": f"Product {i}", "stock": 50} for i in range(1, 21)])
    viewers, cid, reports = 0, 0, 0
    cpu = time.process_time()
    for second in range(SECONDS):
        now = t0 + second
        for _ in range(rng.randint(0, 40) if viewers < VIEWERS else rng.randint(0, 5)):
            viewers += 1
            await prompter.on_event(app, record("viewer.joined", {"viewer_id": f"v{viewers}", "viewers": viewers, "peak": viewers}, now))
        for _ in range(rng.randint(0, 5)):
            viewers = max(0, viewers - 1)
            await prompter.on_event(app, record("viewer.left", {"viewer_id": None, "viewers": viewers}, now))
        for i in range(RATE):
            cid += 1
            vid = f"v{rng.randint(1, VIEWERS)}"
            body = rng.choice(BODIES)
            reason = prompter.moderate_comment(app, {"body": body, "viewer_id": vid, "nickname": vid, "event_id": 1})
            comment = {"id": cid, "body": body, "viewer_id": vid, "nickname": vid, "staff": False, "parent_id": None,
                       "hidden": reason is not None, "hidden_reason": reason}
            name = "comment.held" if reason else "comment.created"
            if reason:
                state.held.pop((vid, body), None)  # the held record would become a stored finding
            else:
                await prompter.on_event(app, record(name, {"comment": comment}, now + i / RATE))
        if rng.random() < 0.3:
            await prompter.on_event(app, record("order.created", {"order": {"product_id": rng.randint(1, 20)}}, now))
        await prompter.on_event(app, record("stream.health", {"bitrate": 2_400_000, "fps": 30.0, "packet_loss": 0.0, "silent": False,
                                                              "audio_level": -20.0, "luma_mean": 110.0, "frame_diff": 3.0,
                                                              "width": 1280, "height": 720, "viewers": viewers}, now))
        live.viewer_series.append((now, live.viewers))
        reports += len(state.engine.step(live, now))
    used = time.process_time() - cpu
    return {"cpu_s": used, "core": used / SECONDS, "comments": RATE * SECONDS, "viewers": viewers, "ops": reports}


def frame_cost() -> dict[str, float]:
    rng = np.random.default_rng(1)
    frames = [av.VideoFrame.from_ndarray(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), format="rgb24").reformat(format="yuv420p")
              for _ in range(8)]
    out = {}
    for every in (1, 2):
        stats = FrameStats(every=every)
        runs = []
        for _ in range(7):
            start = time.perf_counter()
            for i in range(800):
                stats.measure(frames[i % len(frames)])
            runs.append((time.perf_counter() - start) / 800 * 1000)
        out[f"every{every}"] = statistics.median(runs)
    return out


def main() -> None:
    rules = asyncio.run(rules_cost())
    frames = frame_cost()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"""<!-- prompter:begin -->
## Prompter (bench/prompter.py)

Run {when} on {machine()}.

| measure | figure | target |
|---|---|---|
| rule evaluation: {VIEWERS} viewers, {RATE} comments/s, {SECONDS} s simulated ({rules['comments']} comments screened, 1 tick/s) | {rules['core']:.4f} core ({rules['cpu_s']:.2f} s CPU) | ≤ 0.05 core |
| video checks (luma mean + frame difference), 720p frame, every frame | {frames['every1']:.4f} ms | ≤ 0.1 ms |
| video checks as the program runs them (every other frame), per frame | {frames['every2']:.4f} ms | |

The rule figure is the CPU time of the plugin's hooks (``moderate_comment``, its bus rule, the window
rules of ``tick``) over the simulated time; storing a finding (a few per minute) is not included.
<!-- prompter:end -->"""
    write_section("<!-- prompter:begin -->", "<!-- prompter:end -->", section)
    print(section)


if __name__ == "__main__":
    main()
