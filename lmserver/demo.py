"""The demo studio (``lmserver serve --demo``): seeded once per data directory.

An owner account ``host`` whose password is printed once, a catalog of 12 products whose images are
drawn locally with Pillow, and one upcoming event with a filled shopping bag.
"""

from __future__ import annotations

import io
import math
import secrets
import time
from typing import AsyncIterator

from aiohttp import web
from PIL import Image, ImageDraw

from . import auth
from .appkeys import CONFIG, DB
from .images import check_image, store_image

PRODUCTS = [
    ("Silk scarf, sunset print", "Hand-rolled edges, 90×90 cm.", 3900, 40, "SCARF-SUN", (240, 112, 64)),
    ("Ceramic pour-over set", "Dripper, server and two cups.", 5400, 25, "CER-POUR", (90, 140, 160)),
    ("Wireless earbuds Pro", "ANC, 30 h battery, USB-C case.", 7999, 60, "EAR-PRO", (40, 44, 52)),
    ("Linen tote bag", "Natural linen, inside pocket.", 1800, 120, "TOTE-LIN", (200, 184, 150)),
    ("Vitamin C serum 30 ml", "15% L-ascorbic acid, fragrance free.", 2450, 80, "SER-VITC", (250, 190, 60)),
    ("Cast-iron skillet 26 cm", "Pre-seasoned, oven safe.", 4500, 30, "SKIL-26", (60, 60, 66)),
    ("Merino beanie", "Ribbed knit, one size.", 2900, 70, "BEAN-MER", (120, 70, 140)),
    ("Desk lamp, warm dimmable", "Touch dimmer, 3 colour temperatures.", 3600, 45, "LAMP-DSK", (230, 200, 120)),
    ("Yoga mat 6 mm", "Non-slip, carry strap included.", 3200, 55, "YOGA-6", (80, 170, 120)),
    ("Stainless water bottle", "750 ml, keeps cold 24 h.", 2200, 150, "BOT-750", (70, 120, 200)),
    ("Scented candle, fig", "Soy wax, 45 h burn time.", 1900, 90, "CAN-FIG", (160, 100, 90)),
    ("Phone tripod with remote", "Extends to 160 cm, Bluetooth remote.", 2700, 65, "TRI-160", (50, 90, 110)),
]

DEMO_KEY = "demo_seeded"


def product_image(title: str, rgb: tuple[int, int, int], index: int) -> bytes:
    """A 640×480 product picture drawn locally: soft gradient, a shape, no text (fonts vary by machine)."""
    w, h = 640, 480
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    r, g, b = rgb
    for y in range(h):
        t = y / h
        draw.line([(0, y), (w, y)], fill=(int(r + (255 - r) * (1 - t) * 0.55), int(g + (255 - g) * (1 - t) * 0.55), int(b + (255 - b) * (1 - t) * 0.55)))
    cx, cy, size = w // 2, h // 2 + 10, 130
    shade = (max(r - 60, 0), max(g - 60, 0), max(b - 60, 0))
    light = (min(r + 80, 255), min(g + 80, 255), min(b + 80, 255))
    draw.ellipse([cx - size - 10, cy + size - 20, cx + size + 10, cy + size + 20], fill=shade)
    kind = index % 4
    if kind == 0:
        draw.rounded_rectangle([cx - size, cy - size, cx + size, cy + size], radius=36, fill=light, outline=shade, width=6)
    elif kind == 1:
        draw.ellipse([cx - size, cy - size, cx + size, cy + size], fill=light, outline=shade, width=6)
    elif kind == 2:
        pts = [(cx + size * math.cos(a), cy + size * math.sin(a)) for a in [math.pi * 2 * k / 6 + math.pi / 6 for k in range(6)]]
        draw.polygon(pts, fill=light, outline=shade, width=6)
    else:
        draw.polygon([(cx, cy - size), (cx + size, cy + size), (cx - size, cy + size)], fill=light, outline=shade, width=6)
    draw.ellipse([cx - 40, cy - 40, cx + 40, cy + 40], fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


async def seed_demo(app: web.Application) -> str | None:
    """Seed the demo studio once; return the owner's new password (None when already seeded)."""
    db, cfg = app[DB], app[CONFIG]
    if await db.fetchval("SELECT value FROM settings WHERE key = ?", (DEMO_KEY,)):
        return None
    password = None
    if not await db.fetchone("SELECT 1 FROM users WHERE role = 'owner'"):
        password = secrets.token_urlsafe(12)
        await auth.create_user(db, "host", "owner", password, min_password_length=cfg.security.min_password_length)
    now = time.time()
    images = []
    for i, (title, _d, _p, _s, _sku, rgb) in enumerate(PRODUCTS):
        checked = check_image(product_image(title, rgb, i), max_bytes=cfg.catalog.max_image_bytes, max_pixels=cfg.catalog.max_image_pixels)
        images.append(store_image(cfg.data_dir, checked))
    # the next full hour at least two hours ahead
    start = (int(now // 3600) + 3) * 3600
    async with db.transaction() as tx:
        ids = []
        for (title, desc, price, stock, sku, _rgb), image in zip(PRODUCTS, images):
            cur = await tx.execute(
                "INSERT INTO products (title, description, price_cents, currency, stock, sku, image, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO NOTHING",
                (title, desc, price, cfg.catalog.default_currency, stock, sku, image, now, now))
            if cur.lastrowid:
                ids.append(cur.lastrowid)
        cur = await tx.execute(
            "INSERT INTO events (slug, title, description, starts_at, duration_minutes, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("demo-" + secrets.token_hex(3), "Weekend home & lifestyle drop", "Our favourite finds for a cosy weekend, with live-only prices.",
             start, 90, now, now))
        event_id = cur.lastrowid
        for pos, pid in enumerate(ids[:8]):
            await tx.execute("INSERT INTO event_products (event_id, product_id, position, added_at) VALUES (?, ?, ?, ?)",
                             (event_id, pid, pos, now))
        await tx.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (DEMO_KEY, str(now)))
    return password


async def demo_ctx(app: web.Application) -> AsyncIterator[None]:
    password = await seed_demo(app)
    if password:
        print("\n  Demo studio ready. Log in as   user: host   password: " + password +
              "\n  (shown once; change it with: lmserver user passwd host)\n", flush=True)
    else:
        print("  Demo studio already set up in this data directory (log in as 'host').", flush=True)
    yield
