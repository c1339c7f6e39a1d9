"""Every script writes times on the studio's clock (``LMS.time`` in web/static/js/app.js, the zone of
lmserver/timefmt.py), never in the browser's own zone: a viewer abroad and the host must read the same time.
The core pages' scripts and the plugins' scripts alike."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: deliberate uses of the browser's zone, with the reason
ALLOWED = {("web/static/js/events.js", "Your time: "): "the schedule form's tooltip shows the host's own clock beside the studio's"}
BROWSER_ZONE = re.compile(r"\.toLocale(?:String|TimeString|DateString)\(|\.get(?:Hours|Minutes|Day|Date|Month|FullYear)\(")


def test_scripts_format_times_in_the_studio_zone() -> None:
    scripts = sorted((ROOT / "web" / "static" / "js").glob("*.js")) + sorted((ROOT / "plugins").glob("*/static/*.js"))
    assert len(scripts) > 20
    found = []
    for path in scripts:
        rel = path.relative_to(ROOT).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if BROWSER_ZONE.search(line) and not any(rel == f and marker in line for f, marker in ALLOWED):
                found.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert found == [], "times in the browser's zone (use LMS.time(ts, kind)):\n" + "\n".join(found)
