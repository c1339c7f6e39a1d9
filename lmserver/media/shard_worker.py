"""Entry point of a viewer process: ``python -m lmserver.media.shard_worker`` (see shard.py)."""

from __future__ import annotations

import asyncio
import logging
import sys

from .shard import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve())
