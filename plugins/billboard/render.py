"""Drawing billboards with Pillow: the shipped text templates, and image billboards.

Pure functions, no server state: the compositing benchmark imports :func:`render_text_billboard` as is.

Text uses Pillow's own scalable font (``ImageFont.load_default(size=...)``, FreeType, shipped inside
Pillow ≥ 10.1): nothing to download or install. Every billboard is drawn at twice its size and scaled
down, so the text *and* the rounded corners are anti-aliased; what is outside the shape stays
transparent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Mapping

from PIL import Image, ImageDraw, ImageFont

#: supersampling factor: draw at this scale, then shrink (anti-aliased shapes)
SUPERSAMPLE = 2
COLOUR_RE = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
MIN_FONT_SIZE, MAX_FONT_SIZE = 12, 200
MAX_TEXT_LENGTH = 120


@dataclass(frozen=True)
class Template:
    """A shipped text billboard: its look (``style``) and the defaults an author starts from."""

    id: str
    title: str
    text: str
    text_colour: str
    background_colour: str
    font_size: int
    style: str  # pill, tag, coupon, price


TEMPLATES: dict[str, Template] = {t.id: t for t in [
    Template("free_shipping", "Free shipping", "Free shipping today", "#ffffff", "#e11d48", 44, "pill"),
    Template("limited_stock", "Limited stock", "Limited stock", "#111827", "#facc15", 44, "tag"),
    Template("promo_code", "Promo code", "Use code LIVE10", "#ffffff", "#1d4ed8", 44, "coupon"),
    Template("price", "Price callout", "Now only\n$19.99", "#ffffff", "#059669", 40, "price"),
]}


def check_text(text: str) -> str:
    """The billboard's text, stripped; ValueError (with the reason) when unusable."""
    text = "\n".join(line.strip() for line in str(text).strip().splitlines())
    if not text:
        raise ValueError("the text is empty: write what the billboard says")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValueError(f"the text is too long: {len(text)} characters, at most {MAX_TEXT_LENGTH}")
    if text.count("\n") > 2:
        raise ValueError("the text has too many lines: at most 3")
    return text


def check_colour(value: str, what: str) -> str:
    if not isinstance(value, str) or not COLOUR_RE.fullmatch(value):
        raise ValueError(f"{what} must be a colour like #e11d48 (or #e11d48cc with transparency), got {value!r}")
    return value.lower()


def check_font_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_FONT_SIZE <= value <= MAX_FONT_SIZE:
        raise ValueError(f"the font size must be a whole number from {MIN_FONT_SIZE} to {MAX_FONT_SIZE}, got {value!r}")
    return value


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), int(c[6:8], 16) if len(c) == 8 else 255)


def render_text_billboard(template: str | Template, text: str | None = None, colours: Mapping[str, str] | None = None,
                          font_size: int | None = None) -> Image.Image:
    """Draw a text billboard; returns an RGBA image, transparent around the shape.

    ``template`` is a template id (see :data:`TEMPLATES`) or a :class:`Template`; ``text`` (may hold up
    to three lines), ``colours`` (``{"text": "#rrggbb[aa]", "background": ...}``) and ``font_size``
    (pixels) default to the template's. Raises ValueError with the reason for a bad value.
    """
    tpl = template if isinstance(template, Template) else TEMPLATES.get(template)
    if tpl is None:
        raise ValueError(f"unknown template {template!r}: one of {', '.join(TEMPLATES)}")
    text = check_text(tpl.text if text is None else text)
    colours = colours or {}
    fg = _rgba(check_colour(colours.get("text", tpl.text_colour), "the text colour"))
    bg = _rgba(check_colour(colours.get("background", tpl.background_colour), "the background colour"))
    size = check_font_size(tpl.font_size if font_size is None else font_size) * SUPERSAMPLE

    lines = text.split("\n")
    # The price callout's last line (the price) is larger than the label above it.
    sizes = [size] * len(lines)
    if tpl.style == "price" and len(lines) > 1:
        sizes[-1] = int(size * 1.6)
    stroke = max(1, size // 40)  # a thin outline in the text colour reads as a bold weight
    boxes = [ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), line, font=_font(s), stroke_width=stroke)
             for line, s in zip(lines, sizes)]
    gap = size // 4
    text_w = max(b[2] - b[0] for b in boxes)
    text_h = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1)
    pad_x, pad_y = int(size * 0.9), int(size * 0.5)
    if tpl.style == "tag":
        pad_x += size // 2  # room for the stripe
    w, h = text_w + 2 * pad_x, text_h + 2 * pad_y

    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    radius = {"pill": h // 2, "tag": size // 3, "coupon": size // 4, "price": size // 2}[tpl.style]
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=bg)
    if tpl.style == "tag":  # a stripe in the text colour down the left edge
        draw.rounded_rectangle((size // 4, size // 4, size // 4 + size // 5, h - 1 - size // 4), radius=size // 10, fill=fg)
    elif tpl.style == "coupon":  # a dashed border inside the edge, like a cut-out coupon
        inset, dash, width = size // 5, size // 3, max(2, size // 16)
        for x in range(inset + radius // 2, w - inset - radius // 2, dash * 2):
            draw.line((x, inset, min(x + dash, w - inset), inset), fill=fg, width=width)
            draw.line((x, h - 1 - inset, min(x + dash, w - inset), h - 1 - inset), fill=fg, width=width)
        for y in range(inset + radius // 2, h - inset - radius // 2, dash * 2):
            draw.line((inset, y, inset, min(y + dash, h - inset)), fill=fg, width=width)
            draw.line((w - 1 - inset, y, w - 1 - inset, min(y + dash, h - inset)), fill=fg, width=width)

    y = pad_y
    for line, s, box in zip(lines, sizes, boxes):
        lw = box[2] - box[0]
        x = (w - lw) // 2 + (size // 4 if tpl.style == "tag" else 0)
        draw.text((x - box[0], y - box[1]), line, font=_font(s), fill=fg, stroke_width=stroke, stroke_fill=fg)
        y += box[3] - box[1] + gap
    return img.resize((max(2, w // SUPERSAMPLE), max(2, h // SUPERSAMPLE)), Image.Resampling.LANCZOS)


def fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled down (never up) to fit inside ``box``, keeping its aspect ratio; even numbers."""
    w, h = size
    scale = min(1.0, box[0] / w, box[1] / h)
    return max(2, int(w * scale) & ~1), max(2, int(h * scale) & ~1)
