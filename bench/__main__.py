"""``python -m bench [orders] [media]``: run the benchmarks (all by default) and rewrite BENCHMARKS.md.

Each benchmark rewrites only its own section. The media one takes several minutes (it starts up to 300
WebRTC viewers); run one alone with ``python -m bench.orders`` or ``python -m bench.media --help``.
"""

from __future__ import annotations

import subprocess
import sys

BENCHES = {"orders": "bench.orders", "media": "bench.media", "prompter": "bench.prompter", "giveaway": "bench.giveaway",
           "restream": "bench.restream", "glass": "bench.glass", "recording": "bench.recording", "analytics": "bench.analytics", "ladder": "bench.ladder"}


def main() -> int:
    chosen = sys.argv[1:] or list(BENCHES)
    unknown = [b for b in chosen if b not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}: choose from {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== {name}", flush=True)
        rc = subprocess.call([sys.executable, "-m", BENCHES[name]])
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
