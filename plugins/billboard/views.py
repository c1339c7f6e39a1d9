"""HTTP routes of the billboard plugin: JSON under ``/api/plugins/billboard/``, one page under ``/p/billboard/``.

Each handler checks the staff permission, validates its input at the edge (a 4xx with the reason) and
hands the work to :mod:`.service`. Each JSON route is documented with ``lmserver.openapi.doc``.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp import BodyPartReader, web

from lmserver import api
from lmserver.api import BadRequest, PayloadTooLarge, UnsupportedMediaType, check_image, doc, json_body, store_image, validate
from lmserver.api import render as render_page

from . import render, service
from .store import NAME

API = f"/api/plugins/{NAME}"
PERMISSION = "billboards.manage"
TAGS = ["billboard"]
CONTENT_FIELDS = ("name", "template", "text", "text_colour", "background_colour", "font_size")
PLACE_FIELDS = ("x", "y", "width", "height")
BILLBOARD = "{billboard: {id, name, kind, template, text, text_colour, background_colour, font_size, x, y, width, height, shown, event_ids, image_url, preview_url}}"


# --------------------------------------------------------------------------------------------- input


def _id(request: web.Request, key: str = "id") -> int:
    return validate.path_int(request, key)  # ASCII digits below 2^63 (the route's \d+ also matches other scripts' digits)


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """The content fields present in ``data``, checked; BadRequest says which and why."""
    out: dict[str, Any] = {}
    try:
        if "name" in data:
            name = validate.text(data, "name", max_len=80)
            if not 1 <= len(name) <= 80:
                raise ValueError("the name must be 1 to 80 characters")
            out["name"] = name
        if "template" in data:
            if validate.text(data, "template", max_len=80) not in render.TEMPLATES:
                raise ValueError(f"unknown template {data['template']!r}: one of {', '.join(render.TEMPLATES)}")
            out["template"] = data["template"]
        if "text" in data:
            out["text"] = render.check_text(validate.text(data, "text", max_len=render.MAX_TEXT_LENGTH * 2))
        for key, what in (("text_colour", "the text colour"), ("background_colour", "the background colour")):
            if key in data:
                out[key] = render.check_colour(data[key], what)
        if "font_size" in data:
            out["font_size"] = render.check_font_size(data["font_size"])
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return out


def _event_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return validate.as_int(value, "event_id")


async def _json(request: web.Request, row: Any, status: int = 200) -> web.Response:
    return web.json_response({"billboard": await service.to_json(request.app, row)}, status=status)


# --------------------------------------------------------------------------------------------- library


@doc("The shipped text billboard templates and their defaults", returns="{templates: [{id, title, text, text_colour, background_colour, font_size}]}",
     tags=TAGS, permission=PERMISSION)
async def list_templates(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return web.json_response({"templates": [
        {"id": t.id, "title": t.title, "text": t.text, "text_colour": t.text_colour,
         "background_colour": t.background_colour, "font_size": t.font_size} for t in render.TEMPLATES.values()]})


@doc("Every billboard; those attached to event_id first", query={"event_id": "an event's id (optional)"},
     returns="{billboards: [...], max_shown, program: {width, height}}", tags=TAGS, permission=PERMISSION)
async def list_billboards(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    event_id = _event_id(request.query.get("event_id"))
    width, height = service.program_size(request.app)
    return web.json_response({"billboards": await service.list_json(request.app, event_id),
                              "max_shown": service.settings(request.app).max_shown,
                              "program": {"width": width, "height": height}})


@doc("Create a text billboard from a template", body={
    "template": "string: template id (see /templates)", "name": "string: optional, defaults to the template's title",
    "text": "string: optional, up to 3 lines", "text_colour": "string: #rrggbb or #rrggbbaa", "background_colour": "string: #rrggbb or #rrggbbaa",
    "font_size": "integer: 12–200 px", "event_id": "integer: optional: attach it to this event"}, returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def create_text(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    data = await json_body(request)
    content = _content(data)
    if "template" not in content:
        raise BadRequest(f"choose a template: one of {', '.join(render.TEMPLATES)}")
    tpl = render.TEMPLATES[content["template"]]
    fields = {"kind": "text", "name": tpl.title, "text": tpl.text, "text_colour": tpl.text_colour,
              "background_colour": tpl.background_colour, "font_size": tpl.font_size, **content}
    row = await service.create(request.app, fields, _event_id(data.get("event_id")))
    return await _json(request, row, 201)


@doc("Upload an image billboard (PNG, JPEG or WebP, at least 480×360; transparency kept)",
     body={"file": "the image", "name": "optional", "event_id": "optional: attach it to this event"},
     content_type="multipart/form-data", returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def create_image(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(f"upload the image as multipart/form-data with a 'file' field (got {request.content_type or 'none'})")
    cfg = service.settings(request.app)
    form: dict[str, Any] = {}
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader) or part.name not in ("file", "name", "event_id"):
            continue
        if part.name == "file":
            form["file"] = await _read_capped(part, cfg.max_image_bytes)
            form["filename"] = part.filename or "image"
        else:
            form[part.name] = (await part.read_chunk(1024)).decode("utf-8", "replace")
    if "file" not in form:
        raise BadRequest("no image: send it in the 'file' field")
    checked = check_image(form["file"], max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels,
                          min_size=(480, 360), what=f"the image {form['filename']!r}")
    content = _content({"name": form.get("name") or form["filename"].rsplit(".", 1)[0][:80] or "Image"})
    event_id = _event_id(form.get("event_id"))
    name = await asyncio.to_thread(store_image, api.data_dir(request.app), checked)
    fields = {"kind": "image", "image": name, "image_size": (checked.width, checked.height), **content}
    try:
        row = await service.create(request.app, fields, event_id)
    except BaseException:
        (api.uploads_dir(request.app) / name).unlink(missing_ok=True)  # nothing stored on failure
        raise
    return await _json(request, row, 201)


async def _read_capped(part: BodyPartReader, limit: int) -> bytes:
    """Read an uploaded file without ever holding more than ``limit`` + one chunk in memory."""
    buf = io.BytesIO()
    while chunk := await part.read_chunk(64 * 1024):
        buf.write(chunk)
        if buf.tell() > limit:
            raise PayloadTooLarge(f"the image is too large: more than {limit:,} bytes (plugins.{NAME}.max_image_bytes)")
    return buf.getvalue()


@doc("One billboard", returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def get_billboard(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.get(request.app, _id(request)))


@doc("Edit a billboard: its content and/or its place on the program (a shown billboard changes at once)", body={
    "name": "string: 1–80 characters", "template": "string: template id (text)", "text": "string: up to 3 lines (text)",
    "text_colour": "string: #rrggbb[aa] (text)", "background_colour": "string: #rrggbb[aa] (text)", "font_size": "integer: 12–200 (text)",
    "x": "integer: program pixels", "y": "integer: program pixels", "width": "integer: program pixels", "height": "integer: program pixels"},
    returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def patch_billboard(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    data = await json_body(request)
    unknown = set(data) - set(CONTENT_FIELDS) - set(PLACE_FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}: editable are {', '.join(CONTENT_FIELDS + PLACE_FIELDS)}")
    place = {k: data[k] for k in PLACE_FIELDS if k in data}
    row = await service.update(request.app, _id(request), _content(data), place)
    return await _json(request, row)


@doc("Delete a billboard (hidden first if shown; its image file is removed)", returns="{deleted: id}", tags=TAGS, permission=PERMISSION)
async def delete_billboard(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    await service.delete(request.app, _id(request))
    return web.json_response({"deleted": _id(request)})


@doc("The billboard as a PNG, at its saved size", returns="image/png", tags=TAGS, permission=PERMISSION)
async def preview_billboard(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    row = await service.get(request.app, _id(request))
    return await _png(service.draw, row, api.data_dir(request.app))


@doc("Preview an unsaved text billboard as a PNG", query={
    "template": "template id", "text": "text", "text_colour": "#rrggbb[aa]", "background_colour": "#rrggbb[aa]",
    "font_size": "12–200"}, returns="image/png", tags=TAGS, permission=PERMISSION)
async def preview_draft(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    q = dict(request.query)
    if "font_size" in q:
        try:
            q["font_size"] = int(q["font_size"])  # type: ignore[assignment]
        except ValueError:
            raise BadRequest(f"font_size must be a whole number, got {q['font_size']!r}") from None
    content = _content(q)
    colours = {k: content[f"{k}_colour"] for k in ("text", "background") if f"{k}_colour" in content}
    return await _png(render.render_text_billboard, content.get("template", "free_shipping"), content.get("text"),
                      colours, content.get("font_size"))


async def _png(draw: Any, *args: Any) -> web.Response:
    def encode() -> bytes:
        out = io.BytesIO()
        draw(*args).save(out, "PNG")
        return out.getvalue()

    return web.Response(body=await asyncio.to_thread(encode), content_type="image/png", headers={"Cache-Control": "no-cache"})


# --------------------------------------------------------------------------------------------- events and display


@doc("Attach a billboard to an event (it is listed first in that event's console)", returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def attach(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.attach(request.app, _id(request), _id(request, "event_id"), True))


@doc("Detach a billboard from an event", returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def detach(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.attach(request.app, _id(request), _id(request, "event_id"), False))


@doc("Display a billboard in the program (live or practice); 409 when not live or when max_shown are shown",
     returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def show(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.show(request.app, _id(request)))


@doc("Hide a billboard from the program", returns=BILLBOARD, tags=TAGS, permission=PERMISSION)
async def hide(request: web.Request) -> web.Response:
    await api.require(request, PERMISSION)
    return await _json(request, await service.hide(request.app, _id(request)))


# --------------------------------------------------------------------------------------------- page


async def preview_page(request: web.Request) -> web.Response:
    """The billboard library with a program preview: the panel outside any event's console."""
    await api.require(request, PERMISSION)
    return await render_page(request, f"{NAME}/preview.html", {"billboard_panel": panel_context(request.app, None)})


def panel_context(app: web.Application, event_id: int | None) -> dict[str, Any]:
    width, height = service.program_size(app)
    return {"event_id": event_id, "program_width": width, "program_height": height, "api": API,
            "templates": list(render.TEMPLATES.values()), "max_shown": service.settings(app).max_shown}


def routes() -> list[web.RouteDef]:
    one = API + r"/billboards/{id:\d+}"
    return [
        web.get(API + "/templates", list_templates),
        web.get(API + "/billboards", list_billboards),
        web.post(API + "/billboards", create_text),
        web.post(API + "/billboards/image", create_image),
        web.get(one, get_billboard),
        web.patch(one, patch_billboard),
        web.delete(one, delete_billboard),
        web.get(one + "/preview.png", preview_billboard),
        web.post(one + "/show", show),
        web.post(one + "/hide", hide),
        web.get(API + "/preview.png", preview_draft),
        web.put(API + r"/events/{event_id:\d+}/billboards/{id:\d+}", attach),
        web.delete(API + r"/events/{event_id:\d+}/billboards/{id:\d+}", detach),
        web.get(f"/p/{NAME}/preview", preview_page),
    ]
