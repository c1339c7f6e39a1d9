"""The validation layer at the edge: every input the outside probe answered with 500 now gets a 4xx with a reason.

One table of (who, method, path, body, status, words in the message): ids of 2^63 and more, non-ASCII
digits (``²``), lone surrogates, objects where text is expected, NaN/Infinity, dates outside 2000..2100.
And a time already in the database that no calendar holds (written before these checks) must not
take a page down.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import aiohttp
import pytest

from lmserver import validate
from lmserver.appkeys import DB
from lmserver.errors import BadRequest
from lmserver.templating import datetime_utc, iso
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh

BIG = 2**63  # one more than SQLite's largest integer
EVENT = '{"title": "Sale", "duration_minutes": 60, "starts_at": %s}'

# (who, method, path, body: dict | raw JSON text | None, status, words the error message holds)
CASES: list[tuple[str, str, str, Any, int, str]] = [
    # 9. event dates
    ("owner", "POST", "/api/events", EVENT % "1e20", 400, "between 2000-01-01 and 2100-01-01"),
    ("owner", "POST", "/api/events", EVENT % "1e400", 400, "too large"),
    ("owner", "POST", "/api/events", EVENT % "-1e20", 400, "between 2000-01-01"),
    ("owner", "POST", "/api/events", EVENT % "NaN", 400, "NaN"),
    ("owner", "POST", "/api/events", EVENT % "Infinity", 400, "Infinity"),
    ("owner", "POST", "/api/events", EVENT % '"9999-12-31T00:00:00Z"', 400, "between 2000-01-01"),
    ("owner", "POST", "/api/events", EVENT % '"1970-01-01T00:00:00Z"', 400, "between 2000-01-01"),
    ("owner", "PATCH", "/api/events/{eid}", {"starts_at": 1e20}, 400, "between 2000-01-01"),
    ("owner", "POST", "/api/events", {"title": "Sale", "duration_minutes": 1e300, "starts_at": 2e9}, 400, "at most 13 hours"),
    # 10. ids of 2^63 and more, in paths and bodies
    ("owner", "GET", f"/api/products/{BIG}", None, 404, "must be a number"),
    ("owner", "GET", f"/api/events/{BIG}", None, 404, "does not exist"),
    ("owner", "GET", f"/api/events/{BIG}/orders", None, 404, "must be a number"),
    ("owner", "GET", f"/api/events/{BIG}/comments", None, 404, "must be a number"),
    ("owner", "POST", f"/api/comments/{BIG}/reply", {"body": "hi"}, 404, "must be a number"),
    ("anon", "GET", f"/api/e/{BIG}/state", None, 404, "must be a number"),
    ("viewer", "POST", "/api/e/{eid}/orders", {"product_id": 2**64}, 400, "does not fit in 64 bits"),
    ("viewer", "POST", "/api/e/{eid}/orders", f'{{"product_id": {"9" * 5000}}}', 400, "not valid JSON"),
    ("owner", "POST", "/api/events/{eid}/bag", {"product_id": str(BIG)}, 400, "'product_id' must be"),
    ("owner", "GET", f"/api/activity?before={BIG}", None, 400, "'before'"),
    ("owner", "GET", f"/api/events/{{eid}}/orders?session={BIG}", None, 400, "'session'"),
    ("owner", "GET", f"/api/plugins/billboard/billboards/{BIG}", None, 404, "must be a number"),
    ("owner", "GET", f"/api/plugins/billboard/billboards?event_id={BIG}", None, 400, "'event_id'"),
    # non-ASCII digits
    ("owner", "GET", "/api/events/²", None, 404, "does not exist"),
    ("owner", "GET", "/api/products/²", None, 404, "must be a number"),
    ("owner", "GET", "/api/plugins/billboard/billboards/١٢", None, 404, "must be a number"),
    ("owner", "POST", "/api/events/{eid}/bag/²/move", {"position": 1}, 404, "must be a number"),
    ("owner", "GET", "/api/products?limit=²", None, 400, "'limit'"),
    ("owner", "POST", "/api/events/{eid}/bag", {"product_id": "²"}, 400, "'product_id' must be"),
    ("anon", "GET", "/api/e/²/state", None, 404, "must be a number"),
    ("anon", "GET", "/e/²", None, 404, "does not exist"),
    ("viewer", "POST", "/api/e/{eid}/orders", {"product_id": "{pid}", "quantity": "²"}, 400, "'quantity' must be"),
    # lone surrogates
    ("owner", "POST", "/api/products", '{"title": "mug \\udfff", "price": "1.00"}', 400, "not valid Unicode"),
    ("owner", "POST", "/api/events", '{"title": "x", "\\ud800": 1}', 400, "not valid Unicode"),
    ("anon", "POST", "/api/login", '{"name": "\\ud800", "password": "x"}', 400, "not valid Unicode"),
    ("viewer", "POST", "/api/viewer/nickname", '{"nickname": "\\udfffEve"}', 400, "not valid Unicode"),
    # objects or lists where text is expected
    ("owner", "POST", "/api/plugins/billboard/billboards", {"template": {}}, 400, "'template' must be text"),
    ("owner", "POST", "/api/plugins/billboard/billboards", {"template": "free_shipping", "text": ["a"]}, 400, "'text' must be text"),
    ("viewer", "POST", "/api/e/{eid}/gifts", {"gift": {}}, 400, "'gift' must be text"),
    ("owner", "POST", "/api/products", {"title": {"a": 1}, "price": "1"}, 400, "'title' must be text"),
    ("owner", "POST", "/api/products", {"title": "Mug", "price": "1", "currency": ["USD"]}, 400, "'currency' must be text"),
    ("owner", "POST", "/api/products", {"title": "Mug", "price": "1e999999999"}, 400, "'price'"),
    ("owner", "POST", "/api/users", {"name": {}, "role": "owner", "password": "x" * 20}, 400, "'name' must be text"),
    ("owner", "POST", "/api/events/now", {"title": []}, 400, "'title' must be text"),
    ("viewer", "POST", "/api/events/{eid}/registrations", {"nickname": {}}, 400, "'nickname' must be text"),
    # NaN / Infinity anywhere in a JSON body
    ("owner", "POST", "/api/products", '{"title": "Mug", "price": NaN}', 400, "NaN"),
    ("viewer", "POST", "/api/e/{eid}/orders", '{"product_id": 1, "quantity": -Infinity}', 400, "-Infinity"),
    ("owner", "PATCH", "/api/plugins/billboard/billboards/1", '{"x": [1, {"y": NaN}]}', 400, "NaN"),
    ("owner", "POST", "/api/events", "[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
]


async def _request(client: Any, who: str, method: str, path: str, body: Any, ids: dict[str, Any]) -> Any:
    headers: dict[str, str] = dict(ids[who]) if who != "anon" else {}
    data = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        data = data.replace('"{pid}"', str(ids["pid"]))
        headers["Content-Type"] = "application/json"
    return await client.request(method, path.format(**ids), data=data, headers=headers)


@pytest.fixture
async def probe(aiohttp_client: Any, app_factory: Any) -> Any:
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, event_id=eid)
    await go_live(app, eid)
    viewer = await new_viewer(app, "Vi")
    return client, {"eid": eid, "pid": pid, "owner": await staff_cookie(client), "viewer": vh(viewer)}


async def test_bad_inputs_get_a_4xx_with_a_reason(probe: Any) -> None:
    client, ids = probe
    failures = []
    for who, method, path, body, status, words in CASES:
        resp = await _request(client, who, method, path, body, ids)
        text = await resp.text()
        if path.startswith("/api/"):
            message = json.loads(text).get("error", {}).get("message", text)
        else:
            message = text
        if resp.status != status or words not in message:
            failures.append(f"{who} {method} {path} {str(body)[:60]}: {resp.status} {message[:160]}")
    assert not failures, "\n".join(failures)


async def test_the_viewer_websocket_refuses_a_non_ascii_event_id(probe: Any) -> None:
    # a viewer socket follows one existing event (tests/test_bus_ws.py): a bad id is a 400 that says so, never a 500
    client, ids = probe
    for event in ("²", str(BIG), "%ED%A0%80"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"/ws/viewer?event={event}")
        assert refused.value.status == 400
        resp = await client.get(f"/ws/viewer?event={event}")
        assert resp.status == 400 and "/ws/viewer?event=ID" in (await resp.json())["error"]["message"]


async def test_good_inputs_still_work(probe: Any) -> None:
    client, ids = probe
    owner = {**ids["owner"], "Content-Type": "application/json"}
    resp = await client.post("/api/events", headers=owner,
                             data=json.dumps({"title": "Later", "starts_at": "2030-05-01T19:00:00+02:00", "duration_minutes": 60.0}))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["event"]["starts_at"] == dt.datetime(2030, 5, 1, 17, tzinfo=dt.timezone.utc).timestamp()
    resp = await client.post(f"/api/events/{ids['eid']}/bag", headers=owner, data=json.dumps({"product_ids": [str(ids["pid"])]}))
    assert resp.status in (201, 409), await resp.text()
    resp = await client.post(f"/api/e/{ids['eid']}/orders", headers={**ids["viewer"], "Content-Type": "application/json"},
                             data=json.dumps({"product_id": ids["pid"], "quantity": "2"}))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["order"]["quantity"] == 2


async def test_a_bad_time_already_stored_does_not_take_pages_down(probe: Any) -> None:
    client, ids = probe
    app = client.app
    bad = [await make_event(app, title=f"Bad {n}") for n in range(3)]
    for eid, value in zip(bad, (1e20, math.inf, -1e20)):
        await app[DB].execute("UPDATE events SET starts_at = ? WHERE id = ?", (value, eid))
    pages = ["/", "/events", "/studio", "/catalog"] + [p for eid in bad for p in (f"/e/{eid}", f"/e/{eid}/event.ics",
                                                                                  f"/events/{eid}", f"/api/events/{eid}")]
    for page in pages:
        resp = await client.get(page, headers=ids["owner"])
        assert resp.status < 500, f"{page}: {resp.status} {(await resp.text())[:300]}"
    assert "invalid date" in await (await client.get(f"/events/{bad[0]}", headers=ids["owner"])).text()


@pytest.mark.parametrize("value", [1e20, math.inf, math.nan, -1e20, "soon", None, True])
def test_date_filters_never_raise(value: Any) -> None:
    assert datetime_utc(value) in ("", "invalid date")
    assert iso(value) == ""


@pytest.mark.parametrize(("value", "expected"), [
    (12, 12), (12.0, 12), ("12", 12), (" 7 ", 7), ("-3", -3), (2**63 - 1, 2**63 - 1),
    ("²", None), ("١٢", None), (True, None), (1.5, None), (math.nan, None), (str(2**63), None), ({}, None), ("", None),
])
def test_integers_are_ascii_and_64_bit(value: Any, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(BadRequest):
            validate.as_int(value, "n", min=None)
    else:
        assert validate.as_int(value, "n", min=None) == expected
