"""The catalog: products (title, description, price, currency, stock, SKU, image).

Create, edit, archive/unarchive, list and search (title or SKU); CSV import that validates every row
first and imports nothing when any row is bad (the answer lists row, column and reason); image upload
checked by :mod:`lmserver.images`. Prices are integer cents in the database and in the API
(``price_cents``); the CSV and the forms take a decimal price (``12.50``).
"""

from __future__ import annotations

import csv
import io
import re
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from aiohttp import web

from .templating import page

from . import auth, validate
from .appkeys import BUS, CONFIG, DB
from .errors import BadRequest, Conflict, NotFound
from .images import check_image, store_image
from .openapi import doc
from .templating import as_dict
from .views import json_body

routes = web.RouteTableDef()

CSV_COLUMNS = ("title", "description", "price", "currency", "stock", "sku")
REQUIRED_CSV = ("title", "price", "stock")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
SKU_RE = re.compile(r"^[A-Za-z0-9._/-]{1,64}$")
MAX_PRICE_CENTS = 100_000_000_00


def product_json(row: Any) -> dict[str, Any]:
    d = as_dict(row)
    d["archived"] = bool(d["archived"])
    d["image_url"] = f"/uploads/{d['image']}" if d.get("image") else None
    return d


# --------------------------------------------------------------------------------------------- validation


def parse_price(value: Any, field: str = "price") -> int:
    """A decimal price ("12.5", 12.5) → cents; refuse negatives, more than 2 decimals, absurd values."""
    if isinstance(value, (bool, dict, list)) or (isinstance(value, str) and not value.isascii()):
        raise BadRequest(f"'{field}' must be a price like 12.50, got {value!r:.40}")
    try:
        amount = Decimal(str(value).strip())
        exact = amount.is_finite() and amount == amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise BadRequest(f"'{field}' must be a price like 12.50, got {value!r:.40}") from None
    if not exact or amount < 0:
        raise BadRequest(f"'{field}' must be zero or more, with at most 2 decimals, got {value!r:.40}")
    cents = int(amount * 100)
    if cents > MAX_PRICE_CENTS:
        raise BadRequest(f"'{field}' is too large: at most {MAX_PRICE_CENTS // 100}")
    return cents


def clean_product(data: dict[str, Any], *, partial: bool, default_currency: str) -> dict[str, Any]:
    """Validate product fields from JSON; return the columns to write."""
    validate.reject_unknown(data, ("title", "description", "price_cents", "price", "currency", "stock", "sku", "script"),
                           "product")
    out: dict[str, Any] = {}
    if "title" in data or not partial:
        out["title"] = validate.title(data, max_len=200)
    if "description" in data:
        out["description"] = validate.description(data)
    if "price_cents" in data:
        v = data["price_cents"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_PRICE_CENTS:
            raise BadRequest(f"'price_cents' must be an integer number of cents, 0 or more, got {v!r}")
        out["price_cents"] = v
    elif "price" in data:
        out["price_cents"] = parse_price(data["price"])
    elif not partial:
        raise BadRequest("'price_cents' (integer cents) or 'price' (e.g. 12.50) is required")
    if "currency" in data or not partial:
        cur = (validate.text(data, "currency", max_len=40) or default_currency).upper()
        if not CURRENCY_RE.match(cur):
            raise BadRequest(f"'currency' must be a 3-letter ISO code such as USD or EUR, got {cur!r}")
        out["currency"] = cur
    if "stock" in data or not partial:
        v = data.get("stock", 0)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 10_000_000:
            raise BadRequest(f"'stock' must be a whole number from 0 to 10000000, got {v!r}")
        out["stock"] = v
    if "sku" in data:
        sku = validate.text(data, "sku", max_len=64) or None
        if sku is not None and not SKU_RE.match(sku):
            raise BadRequest("'sku' must be 1–64 characters: letters, digits, . _ / -")
        out["sku"] = sku
    if "script" in data:  # staff-only talking points (never in PUBLIC_PRODUCT)
        out["script"] = validate.script(data)
    return out


async def _sku_free(request: web.Request, sku: str | None, product_id: int | None = None) -> None:
    if sku is None:
        return
    row = await request.app[DB].fetchone("SELECT id, title FROM products WHERE sku = ?", (sku,))
    if row is not None and row["id"] != product_id:
        raise Conflict(f"SKU {sku!r} is already used by product #{row['id']} ({row['title']}): choose another SKU")


async def get_product(request: web.Request, product_id: int) -> Any:
    row = await request.app[DB].fetchone("SELECT * FROM products WHERE id = ?", (product_id,))
    if row is None:
        raise NotFound(f"product {product_id} does not exist")
    return row


def _int_param(request: web.Request, name: str) -> int:
    return validate.path_int(request, name)


# --------------------------------------------------------------------------------------------- API


async def search_products(request: web.Request, q: str = "", archived: bool = False, limit: int = 200, offset: int = 0) -> list[Any]:
    where, params = ["archived = ?"], [int(archived)]
    if q:
        where.append("(title LIKE ? ESCAPE '\\' OR sku LIKE ? ESCAPE '\\')")
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like]
    return await request.app[DB].fetchall(
        f"SELECT * FROM products WHERE {' AND '.join(where)} ORDER BY title COLLATE NOCASE LIMIT ? OFFSET ?", (*params, limit, offset))


@routes.get("/api/products")
@doc("List and search products", query={"q": "text in title or SKU", "archived": "1 to list archived products",
     "limit": "1–500 (default 200)", "offset": "paging offset"}, returns="{products: [...], total}", tags=["catalog"], permission="console.view")
async def api_products(request: web.Request) -> web.Response:
    await auth.require(request)
    q = request.query
    limit = validate.query_int(request, "limit", default=200, min=1, max=500, clamp=True)
    offset = validate.query_int(request, "offset", default=0, clamp=True)
    archived = q.get("archived") in ("1", "true")
    rows = await search_products(request, validate.query_text(request, "q").strip(), archived, limit, offset)
    total = await request.app[DB].fetchval("SELECT COUNT(*) FROM products WHERE archived = ?", (int(archived),))
    return web.json_response({"products": [product_json(r) for r in rows], "total": total})


@routes.post("/api/products")
@doc("Create a product", body={"title": "string: 1–200 characters", "description": "string", "price_cents": "integer: cents (or price: '12.50')",
     "currency": "string: ISO code (default catalog.default_currency)", "stock": "integer: units in stock", "sku": "string: unique stock-keeping unit (optional)",
     "script": "string: talking points for the host (staff-only, at most 4000 characters; optional)"},
     returns="{product}", tags=["catalog"], permission="catalog.edit")
async def api_product_create(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    cols = clean_product(await json_body(request), partial=False, default_currency=request.app[CONFIG].catalog.default_currency)
    await _sku_free(request, cols.get("sku"))
    now = time.time()
    cols.update(created_at=now, updated_at=now)
    async with request.app[DB].transaction() as tx:
        cur = await tx.execute(f"INSERT INTO products ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tuple(cols.values()))
        pid = cur.lastrowid
    product = product_json(await get_product(request, pid or 0))
    await request.app[BUS].publish("product.created", {"product": product})
    return web.json_response({"product": product}, status=201)


@routes.get("/api/products/{id}")
@doc("One product", returns="{product}", tags=["catalog"], permission="console.view")
async def api_product_get(request: web.Request) -> web.Response:
    await auth.require(request)
    return web.json_response({"product": product_json(await get_product(request, _int_param(request, "id")))})


@routes.patch("/api/products/{id}")
@doc("Edit a product (any subset of the create fields)", body={"title": "string", "description": "string", "price_cents": "integer", "currency": "string",
     "stock": "integer", "sku": "string", "script": "string: talking points, staff-only, at most 4000 characters"}, returns="{product}", tags=["catalog"], permission="catalog.edit")
async def api_product_update(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    pid = _int_param(request, "id")
    await get_product(request, pid)
    cols = clean_product(await json_body(request), partial=True, default_currency=request.app[CONFIG].catalog.default_currency)
    if "sku" in cols:
        await _sku_free(request, cols["sku"], pid)
    return await _update(request, pid, cols)


async def _update(request: web.Request, pid: int, cols: dict[str, Any]) -> web.Response:
    cols["updated_at"] = time.time()
    async with request.app[DB].transaction() as tx:
        await tx.execute(f"UPDATE products SET {', '.join(f'{k} = ?' for k in cols)} WHERE id = ?", (*cols.values(), pid))
    product = product_json(await get_product(request, pid))
    await request.app[BUS].publish("product.updated", {"product": product})
    return web.json_response({"product": product})


@routes.post("/api/products/{id}/archive")
@doc("Archive a product (hidden from lists and bags' search; orders keep it)", returns="{product}", tags=["catalog"], permission="catalog.edit")
async def api_product_archive(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    pid = _int_param(request, "id")
    await get_product(request, pid)
    response = await _update(request, pid, {"archived": 1})
    await request.app[BUS].publish("product.archived", {"product_id": pid})
    return response


@routes.post("/api/products/{id}/unarchive")
@doc("Bring an archived product back", returns="{product}", tags=["catalog"], permission="catalog.edit")
async def api_product_unarchive(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    pid = _int_param(request, "id")
    await get_product(request, pid)
    return await _update(request, pid, {"archived": 0})


async def _upload_bytes(request: web.Request, field: str = "image") -> bytes:
    if request.content_type.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if getattr(part, "name", None) == field:
                return bytes(await part.read(decode=False))  # type: ignore[union-attr]
        raise BadRequest(f"send the file in a multipart field named '{field}'")
    return await request.read()


@routes.post("/api/products/{id}/image")
@doc("Upload the product's image (multipart field 'image', or the raw bytes); PNG, JPEG or WebP", body={"image": "file"},
     content_type="multipart/form-data", returns="{product}", tags=["catalog"], permission="catalog.edit")
async def api_product_image(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    pid = _int_param(request, "id")
    old = await get_product(request, pid)
    cfg = request.app[CONFIG]
    checked = check_image(await _upload_bytes(request), max_bytes=cfg.catalog.max_image_bytes, max_pixels=cfg.catalog.max_image_pixels)
    name = store_image(cfg.data_dir, checked)
    response = await _update(request, pid, {"image": name})
    if old["image"]:
        (cfg.data_dir / "uploads" / old["image"]).unlink(missing_ok=True)
    return response


@routes.post("/api/products/import")
@doc("Import products from CSV (columns: title, description, price, currency, stock, sku); all rows or none",
     body={"type": "string", "description": "CSV text (text/csv) or multipart field 'file'"}, content_type="text/csv",
     returns="{imported: N}; on any bad row 400 with error.details = [{row, column, reason}]", tags=["catalog"], permission="catalog.edit")
async def api_products_import(request: web.Request) -> web.Response:
    await auth.require(request, "catalog.edit")
    raw = await _upload_bytes(request, "file")
    count = await import_csv(request, raw)
    return web.json_response({"imported": count}, status=201)


async def import_csv(request: web.Request, raw: bytes) -> int:
    cfg = request.app[CONFIG].catalog
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the CSV file must be UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_CSV if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if unknown:
            parts.append("unknown column(s) " + ", ".join(unknown))
        raise BadRequest("the CSV header is wrong: " + "; ".join(parts) + ". Expected: " + ", ".join(CSV_COLUMNS))
    reader.fieldnames = header
    errors: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    seen_skus: dict[str, int] = {}
    existing = {r["sku"] for r in await request.app[DB].fetchall("SELECT sku FROM products WHERE sku IS NOT NULL")}
    for lineno, rec in enumerate(reader, start=2):  # row 1 is the header
        if len(rows) + len(errors) >= cfg.max_csv_rows:
            raise BadRequest(f"the CSV file has more than {cfg.max_csv_rows} rows: split it")
        if None in rec:
            errors.append({"row": lineno, "column": None, "reason": "more values than columns"})
            continue
        data: dict[str, Any] = {"title": (rec.get("title") or "").strip(), "description": rec.get("description") or ""}
        row_errors = []
        for column, convert in (("price", lambda v: parse_price(v)), ("stock", _parse_stock)):
            try:
                data["price_cents" if column == "price" else column] = convert(rec.get(column) or "")
            except BadRequest as exc:
                row_errors.append({"row": lineno, "column": column, "reason": exc.message})
        if rec.get("currency"):
            data["currency"] = rec["currency"].strip()
        if rec.get("sku"):
            data["sku"] = rec["sku"].strip()
        try:
            cols = clean_product({k: v for k, v in data.items() if k not in ("price_cents", "stock")} | {"price_cents": 0, "stock": 0},
                                 partial=False, default_currency=cfg.default_currency)
        except BadRequest as exc:
            column = next((c for c in CSV_COLUMNS if f"'{c}'" in exc.message), None)
            row_errors.append({"row": lineno, "column": column, "reason": exc.message})
            cols = {}
        sku = cols.get("sku")
        if sku:
            if sku in existing:
                row_errors.append({"row": lineno, "column": "sku", "reason": f"SKU {sku!r} already exists in the catalog"})
            elif sku in seen_skus:
                row_errors.append({"row": lineno, "column": "sku", "reason": f"SKU {sku!r} is repeated (first on row {seen_skus[sku]})"})
            else:
                seen_skus[sku] = lineno
        if row_errors:
            errors.extend(row_errors)
            continue
        cols["price_cents"], cols["stock"] = data["price_cents"], data["stock"]
        rows.append(cols)
    if errors:
        raise BadRequest(f"nothing was imported: {len(errors)} problem(s) in the CSV file; fix the rows listed and import again",
                         details=errors)
    if not rows:
        raise BadRequest("the CSV file has no product rows")
    now = time.time()
    async with request.app[DB].transaction() as tx:
        for cols in rows:
            cols.update(created_at=now, updated_at=now)
            await tx.execute(f"INSERT INTO products ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tuple(cols.values()))
    return len(rows)


def _parse_stock(value: str) -> int:
    value = value.strip()
    if not re.fullmatch(r"[0-9]{1,8}", value):
        raise BadRequest(f"'stock' must be a whole number of 0 or more, got {value!r}")
    return int(value)


async def serve_upload(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if not re.fullmatch(r"[0-9a-f]{24}\.(png|jpg|webp)", name):
        raise NotFound("no such upload")
    path = Path(request.app[CONFIG].data_dir) / "uploads" / name
    if not path.is_file():
        raise NotFound("no such upload")
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


# --------------------------------------------------------------------------------------------- page


@routes.get("/catalog")
@page("catalog.html")
async def catalog_page(request: web.Request) -> dict[str, Any]:
    user = await auth.require(request)
    q = validate.query_text(request, "q").strip()
    archived = request.query.get("archived") == "1"
    rows = await search_products(request, q, archived, 500)
    return {"products": [product_json(r) for r in rows], "q": q, "archived": archived, "can_edit": user.can("catalog.edit"),
            "default_currency": request.app[CONFIG].catalog.default_currency, "script_max": validate.SCRIPT_MAX}
