"""The verifiable draw: commit, freeze, pick, reveal (written out in ``docs/giveaways.md``).

Pure functions over bytes and strings, so the proof page's JavaScript, the documented Python verifier
and the tests can recompute every step:

1. at start: ``seed`` = 32 random bytes; ``commitment = SHA-256(seed)`` (hex) is published before any entry;
2. at the countdown's end: the pool's entry ids are sorted (byte order of their ASCII text) and
   ``entries_hash = SHA-256("\\n".join(sorted_ids))`` (hex) is published;
3. for pick ``i`` = 1, 2, ...: ``n = int(SHA-256(seed ‖ entries_hash_bytes ‖ i as 4 bytes big-endian)) mod
   len(pool)``; ``pool.pop(n)`` wins (RFC 3797's idea: everything follows from public values and one secret
   chosen before the list was known);
4. the seed is revealed: anyone checks ``SHA-256(seed) == commitment`` and re-runs 2–3.
"""

from __future__ import annotations

import hashlib
import secrets


def new_seed() -> bytes:
    """A fresh 256-bit seed."""
    return secrets.token_bytes(32)


def commitment(seed: bytes) -> str:
    """``SHA-256(seed)``, hex: what is published when the giveaway starts."""
    return hashlib.sha256(seed).hexdigest()


def entries_hash(entry_ids: list[str]) -> str:
    """SHA-256 of the sorted entry ids joined by newlines (UTF-8), hex."""
    return hashlib.sha256("\n".join(sorted(entry_ids)).encode()).hexdigest()


def pick(seed: bytes, entry_ids: list[str], count: int) -> list[str]:
    """The ``count`` winners (at most the pool's size), in pick order."""
    pool = sorted(entry_ids)
    digest = bytes.fromhex(entries_hash(pool))
    winners = []
    for i in range(1, min(count, len(pool)) + 1):
        h = hashlib.sha256(seed + digest + i.to_bytes(4, "big")).digest()
        winners.append(pool.pop(int.from_bytes(h, "big") % len(pool)))
    return winners
