"""The catalog: products, search, CSV import (all or nothing, per-row report), image uploads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from lmserver.appkeys import CONFIG, DB
from tests.conftest import login


def png(w: int = 64, h: int = 48, mode: str = "RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), (200, 10, 10, 128) if mode == "RGBA" else (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
async def staff(client: Any) -> tuple[Any, dict[str, str]]:
    return client, {"X-CSRF-Token": await login(client, "assistant")}


async def test_create_edit_search_archive(staff: Any) -> None:
    client, h = staff
    resp = await client.post("/api/products", json={"title": "Rose hand cream", "price": "12.5", "stock": 10, "sku": "HC-1"}, headers=h)
    assert resp.status == 201
    p = (await resp.json())["product"]
    assert (p["price_cents"], p["currency"], p["stock"]) == (1250, "USD", 10)
    resp = await client.patch(f"/api/products/{p['id']}", json={"price_cents": 999, "stock": 4}, headers=h)
    assert (await resp.json())["product"]["price_cents"] == 999
    await client.post("/api/products", json={"title": "Lip balm", "price_cents": 500, "stock": 1, "sku": "LB-1"}, headers=h)
    found = (await (await client.get("/api/products?q=hc-")).json())["products"]
    assert [x["title"] for x in found] == ["Rose hand cream"]
    assert (await client.post(f"/api/products/{p['id']}/archive", headers=h)).status == 200
    listed = (await (await client.get("/api/products")).json())["products"]
    assert [x["title"] for x in listed] == ["Lip balm"]
    archived = (await (await client.get("/api/products?archived=1")).json())["products"]
    assert [x["title"] for x in archived] == ["Rose hand cream"]


@pytest.mark.parametrize("body, message", [
    ({"price": "1", "stock": 1}, "'title' is required"),
    ({"title": "x", "price": "-1", "stock": 1}, "'price' must be zero or more"),
    ({"title": "x", "price": "1.999", "stock": 1}, "at most 2 decimals"),
    ({"title": "x", "price": "abc", "stock": 1}, "'price' must be a price"),
    ({"title": "x", "price_cents": 1.5, "stock": 1}, "'price_cents' must be an integer"),
    ({"title": "x", "price": "1", "stock": -2}, "'stock' must be a whole number"),
    ({"title": "x", "price": "1", "stock": 1, "currency": "dollars"}, "'currency' must be a 3-letter ISO code"),
    ({"title": "x", "price": "1", "stock": 1, "colour": "red"}, "unknown product fields"),
])
async def test_bad_product_input(staff: Any, body: dict[str, Any], message: str) -> None:
    client, h = staff
    resp = await client.post("/api/products", json=body, headers=h)
    assert resp.status == 400 and message in (await resp.json())["error"]["message"]
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 0


async def test_duplicate_sku_is_a_conflict(staff: Any) -> None:
    client, h = staff
    await client.post("/api/products", json={"title": "a", "price": "1", "stock": 1, "sku": "S1"}, headers=h)
    resp = await client.post("/api/products", json={"title": "b", "price": "1", "stock": 1, "sku": "S1"}, headers=h)
    assert resp.status == 409 and "already used" in (await resp.json())["error"]["message"]


async def test_non_json_body(staff: Any) -> None:
    client, h = staff
    resp = await client.post("/api/products", data="title=x", headers={**h, "Content-Type": "text/plain"})
    assert resp.status == 415
    resp = await client.post("/api/products", data="{not json", headers={**h, "Content-Type": "application/json"})
    assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]["message"]


async def test_csv_import_all_or_nothing_with_row_report(staff: Any) -> None:
    client, h = staff
    bad = ("title,description,price,currency,stock,sku\n"
           "Good one,,10.00,USD,5,G1\n"
           ",no title,3.00,USD,1,G2\n"
           "Bad price,,ten,USD,1,G3\n"
           "Bad stock,,1.00,USD,-4,G4\n"
           "Dup sku,,1.00,USD,1,G1\n")
    resp = await client.post("/api/products/import", data=bad.encode(), headers={**h, "Content-Type": "text/csv"})
    assert resp.status == 400
    err = (await resp.json())["error"]
    assert "nothing was imported" in err["message"]
    report = {(d["row"], d["column"]) for d in err["details"]}
    assert {(3, "title"), (4, "price"), (5, "stock"), (6, "sku")} <= report
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 0
    good = "title,price,stock,sku\nMug,9.50,20,M1\nPlate,14,8,P1\n"
    resp = await client.post("/api/products/import", data=good.encode(), headers={**h, "Content-Type": "text/csv"})
    assert resp.status == 201 and (await resp.json())["imported"] == 2
    # multipart upload of the file works the same
    form = aiohttp.FormData()
    form.add_field("file", b"title,price,stock\nBowl,5,3\n", filename="p.csv", content_type="text/csv")
    resp = await client.post("/api/products/import", data=form, headers=h)
    assert resp.status == 201
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM products") == 3


async def test_csv_bad_header(staff: Any) -> None:
    client, h = staff
    resp = await client.post("/api/products/import", data=b"name,cost\nx,1\n", headers={**h, "Content-Type": "text/csv"})
    msg = (await resp.json())["error"]["message"]
    assert resp.status == 400 and "missing column(s) title, price, stock" in msg and "unknown column(s) name, cost" in msg


async def _product(client: Any, h: dict[str, str]) -> int:
    resp = await client.post("/api/products", json={"title": "Pic", "price": "1", "stock": 1}, headers=h)
    return (await resp.json())["product"]["id"]


async def test_image_upload_ok_and_served(staff: Any) -> None:
    client, h = staff
    pid = await _product(client, h)
    form = aiohttp.FormData()
    form.add_field("image", png(), filename="a.png", content_type="image/png")
    resp = await client.post(f"/api/products/{pid}/image", data=form, headers=h)
    assert resp.status == 200
    url = (await resp.json())["product"]["image_url"]
    served = await client.get(url)
    assert served.status == 200 and Image.open(io.BytesIO(await served.read())).size == (64, 48)


def _bomb() -> bytes:
    img = Image.new("1", (12000, 12000))  # 144 Mpx, tiny when compressed
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("data, status, message", [
    (b"this is text, not a picture", 415, "not an image"),
    (b"", 400, "empty"),
    ("bomb", 413, "too many pixels"),
    ("big", 413, "too large"),
    ("truncated", 415, "damaged or truncated"),
    ("gif", 415, "allowed types"),
])
async def test_bad_uploads_are_refused_and_nothing_is_stored(aiohttp_client: Any, app_factory: Any, data: Any, status: int, message: str) -> None:
    client = await aiohttp_client(app_factory(catalog={"max_image_bytes": 200_000}))
    h = {"X-CSRF-Token": await login(client, "owner")}
    pid = await _product(client, h)
    if data == "bomb":
        data = _bomb()
    elif data == "big":
        data = png(600, 600, "RGBA") + b"\0" * 200_000
    elif data == "truncated":
        data = png(300, 300)[:-200]
    elif data == "gif":
        buf = io.BytesIO()
        Image.new("RGB", (10, 10)).save(buf, "GIF")
        data = buf.getvalue()
    form = aiohttp.FormData()
    form.add_field("image", data, filename="evil.png", content_type="image/png")
    resp = await client.post(f"/api/products/{pid}/image", data=form, headers=h)
    assert resp.status == status, await resp.text()
    assert message in (await resp.json())["error"]["message"]
    assert await client.app[DB].fetchval("SELECT image FROM products WHERE id = ?", (pid,)) is None
    assert list((Path(client.app[CONFIG].data_dir) / "uploads").iterdir()) == []


async def test_oversized_body_is_413(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(server={"max_body_bytes": 1024}))
    h = {"X-CSRF-Token": await login(client, "owner")}
    resp = await client.post("/api/products", data=b"{" + b" " * 5000 + b"}", headers={**h, "Content-Type": "application/json"})
    assert resp.status == 413 and "too large" in (await resp.json())["error"]["message"]
