"""The flash-sale banner composited on the program video (``[plugins.flashsale] banner = true``; off by default).

One compositor layer per running sale of the live event, ``flashsale:banner:<id>``, in the countdown band
(``Z_COUNTDOWN + 1``), across the bottom of the program: "FLASH SALE", the product and the deal price (the
regular one struck through), then "Starts in 0:30" / "Ends in 4:12" and "7 of 50 sold" over a progress bar
("SOLD OUT" once the allocation is gone; "PRACTICE" in a practice session). The ``tick`` hook (once a second
while live) redraws a banner only when its text changed (the clock moves once a second) and removes the
banners of sales that stopped running; ``flashsale.ended`` removes one at once. Drawing runs off the event
loop; the layer is the only pixel path (the compositor blends it into the one program encode).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiohttp import web
from PIL import Image, ImageDraw, ImageFont

from lmserver import api

#: sale id → (the text drawn, the image) of the banners on the program (what to redraw; what tests compare)
SHOWN = web.AppKey("flashsale_banners", dict)
PREFIX = "flashsale:banner:"
Z = api.Z_COUNTDOWN + 1
RED, WHITE, DIM, TRACK = (217, 48, 79, 255), (255, 255, 255, 255), (255, 255, 255, 190), (255, 255, 255, 70)
SUPERSAMPLE = 2


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    return ImageFont.load_default(size=size)


def _clock(seconds: float) -> str:
    s = max(0, int(seconds + 0.999))
    return f"{s // 60}:{s % 60:02d}"


def lines(sale: dict[str, Any], now: float) -> tuple[str, str, str, str, float]:
    """What the banner says: (headline, prices, the clock, the count, the share sold 0..1)."""
    left = sale["allocated"] - sale["sold"] - sale["offered"]
    head = ("PRACTICE · " if sale["practice"] else "") + "FLASH SALE · " + str(sale.get("title") or "")[:40]
    prices = f"{sale['deal_price_cents'] / 100:.2f} {sale['currency'] or ''}".strip()
    clock = f"Starts in {_clock(sale['starts_at'] - now)}" if now < sale["starts_at"] else f"Ends in {_clock(sale['ends_at'] - now)}"
    count = "SOLD OUT" if left <= 0 else f"{sale['sold']} of {sale['allocated']} sold"
    return head, prices, clock, count, min(1.0, sale["sold"] / sale["allocated"])


def draw(text: tuple[str, str, str, str, float], regular: str, width: int, height: int) -> Image.Image:
    """The banner (RGBA, ``width`` × ``height`` program pixels): a dark rounded box, the red deal price, the
    regular price struck through, the clock and the count over a progress bar."""
    head, deal, clock, count, share = text
    w, h = width * SUPERSAMPLE, height * SUPERSAMPLE
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, w - 1, h - 1), radius=h // 6, fill=(17, 17, 17, 215))
    pad = h // 8
    big, small = _font(int(h * 0.30)), _font(int(h * 0.20))
    d.rounded_rectangle((0, 0, pad // 2, h - 1), radius=pad // 4, fill=RED)  # a red edge: reads as a deal
    d.text((pad * 2, pad), head, font=small, fill=WHITE)
    y = pad + int(h * 0.26)
    d.text((pad * 2, y), deal, font=big, fill=(255, 90, 110, 255))
    x = pad * 2 + d.textlength(deal, font=big) + pad
    if regular:
        d.text((x, y + int(h * 0.08)), regular, font=small, fill=DIM)
        rw = d.textlength(regular, font=small)
        mid = y + int(h * 0.08) + int(h * 0.11)
        d.line((x, mid, x + rw, mid), fill=DIM, width=max(2, h // 40))
    right = w - pad * 2
    d.text((right - d.textlength(clock, font=small), pad), clock, font=small, fill=WHITE)
    d.text((right - d.textlength(count, font=small), pad + int(h * 0.26)), count, font=small, fill=WHITE)
    bar_y, bar_h = h - pad - h // 10, h // 10
    d.rounded_rectangle((pad * 2, bar_y, right, bar_y + bar_h), radius=bar_h // 2, fill=TRACK)
    if share > 0:
        d.rounded_rectangle((pad * 2, bar_y, pad * 2 + max(bar_h, int((right - pad * 2) * share)), bar_y + bar_h),
                            radius=bar_h // 2, fill=RED)
    return img.resize((width, height), Image.Resampling.LANCZOS)


def place(app: web.Application, index: int) -> tuple[int, int, int, int]:
    """(x, y, width, height) of the ``index``-th banner: bottom of the program, stacked upwards, even numbers."""
    pw, ph = api.program_size(app)
    width = min(pw - 2 * (pw // 32), 960) & ~1
    height = max(40, ph // 8) & ~1
    x = ((pw - width) // 2) & ~1
    y = (ph - ph // 24 - (index + 1) * (height + 8)) & ~1
    return x, y, width, height


async def refresh(app: web.Application, sales: list[dict[str, Any]], now: float) -> None:
    """Show one banner per sale in ``sales`` (the running, full sales of the live event); remove the others."""
    comp = api.compositor(app)
    if comp is None:
        return
    shown: dict[int, tuple[Any, Image.Image]] = app[SHOWN]
    for index, sale in enumerate(sales):
        text = lines(sale, now)
        key = (text, index)
        if sale["id"] in shown and shown[sale["id"]][0] == key and any(layer.name == f"{PREFIX}{sale['id']}" for layer in comp.layers()):
            continue
        regular = f"{sale['regular_price_cents'] / 100:.2f}" if sale.get("regular_price_cents") else ""
        x, y, w, h = place(app, index)
        image = await asyncio.to_thread(draw, text, regular, w, h)
        await asyncio.to_thread(comp.set_layer, f"{PREFIX}{sale['id']}", image, x, y, w, h, 1.0, Z)
        shown[sale["id"]] = (key, image)
    keep = {s["id"] for s in sales}
    for sale_id in [i for i in shown if i not in keep]:
        remove(app, sale_id)


def remove(app: web.Application, sale_id: int) -> None:
    app[SHOWN].pop(sale_id, None)
    comp = api.compositor(app)
    if comp is not None:
        comp.remove_layer(f"{PREFIX}{sale_id}")
