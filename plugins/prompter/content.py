"""Content-quality checks (pure functions: no clock, no database; the tests and the bench call them)."""

from __future__ import annotations

import re
import time
from collections import deque
from typing import Iterable

from .settings import Settings

LINK = re.compile(r"(?i)\b(?:https?://|www\.)\S+|\b[a-z0-9][a-z0-9-]{1,62}\.(?:com|net|org|io|co|shop|store|link|xyz|ly|me|app|info|biz)\b(?:/\S*)?")
EMAIL = re.compile(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b")
# 8+ digits, optionally with a leading + and separators (spaces, dots, dashes, parentheses) between them
PHONE = re.compile(r"(?<![\w])\+?(?:\d[\s().-]{0,2}){8,15}(?![\w])")


class WordList:
    """Case-insensitive whole-word (or phrase) matching of a list, compiled once."""

    def __init__(self, words: Iterable[str]):
        words = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
        self.pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.I) if words else None

    def find(self, text: str) -> str | None:
        if self.pattern is None:
            return None
        m = self.pattern.search(text)
        return m.group(1).lower() if m else None


class Screen:
    """What the plugin's ``moderate_comment`` asks: a reason to hold a viewer's comment, or None."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.muted = WordList(settings.muted_words)
        self.prohibited = WordList(settings.prohibited_words)
        self.claims = WordList(settings.prohibited_claims)
        #: viewer id -> recent (time, normalized body)
        self.recent: dict[str, deque[tuple[float, str]]] = {}

    def check(self, body: str, viewer_id: str | None = None, now: float | None = None) -> tuple[str, str] | None:
        """``(rule id, reason)`` when the comment must be held from viewers, else None."""
        s = self.settings
        if s.on("prohibited_words") and (w := self.prohibited.find(body)):
            return "prohibited_words", f"prohibited word: “{w}”"
        if s.on("muted_words") and (w := self.muted.find(body)):
            return "muted_words", f"muted phrase: “{w}”"
        if s.on("contact_details"):
            if s.hold_contacts and EMAIL.search(body):
                return "contact_details", "contains an e-mail address"
            if s.hold_links and LINK.search(body):
                return "contact_details", "contains a link"
            if s.hold_contacts and PHONE.search(body):
                return "contact_details", "contains a phone number"
        if s.on("flood") and viewer_id is not None and s.flood_repeats >= 2:
            now = time.time() if now is None else now
            norm = " ".join(body.lower().split())
            q = self.recent.setdefault(viewer_id, deque(maxlen=max(s.flood_repeats * 2, 8)))
            while q and now - q[0][0] > s.flood_window:
                q.popleft()
            q.append((now, norm))
            same = sum(1 for _, b in q if b == norm)
            if len(self.recent) > 20_000:  # bounded: forget the quietest viewers
                for key in list(self.recent)[:10_000]:
                    del self.recent[key]
            if same >= s.flood_repeats:
                return "flood", f"flood: the same comment {same} times within {int(s.flood_window)} s"
        return None

    def staff_word(self, body: str) -> str | None:
        """A prohibited word in a staff reply (warned, not blocked)."""
        return self.prohibited.find(body) if self.settings.on("staff_prohibited") else None

    def claim(self, title: str) -> str | None:
        """A prohibited claim in a product title."""
        return self.claims.find(title) if self.settings.on("product_claims") else None
