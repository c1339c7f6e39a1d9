"""The shop-link checkout plugin: the URLs it builds, its settings, its mapping routes, and Buy → pending_payment
with the shop's URL (the viewer page's redirect is in tests/e2e/test_orders_browser.py)."""

from __future__ import annotations

from typing import Any

import lmserver_plugins.shoplink as shoplink
import pytest
from lmserver_plugins.shoplink.links import Settings, build_url

from lmserver.api import ConfigError
from lmserver.appkeys import DB
from tests.livehelpers import go_live, make_event, make_product, new_viewer, staff_cookie, vh


def test_shopify_woocommerce_and_custom_urls() -> None:
    shopify = Settings.from_table({"shop": "my-store.myshopify.com"})
    assert build_url(shopify, shop_id="44012345678901", quantity=2) == "https://my-store.myshopify.com/cart/44012345678901:2"
    woo = Settings.from_table({"shop": "shop.example.com", "url_template": "woocommerce"})
    assert build_url(woo, shop_id="123", quantity=3) == "https://shop.example.com/?add-to-cart=123&quantity=3"
    custom = Settings.from_table({"url_template": "https://pay.example.com/buy?sku={id}&n={qty}&ref=lms-{order}&p={product}"})
    assert build_url(custom, shop_id="MUG-1", quantity=1, order_id=42, product_id=7) == \
        "https://pay.example.com/buy?sku=MUG-1&n=1&ref=lms-42&p=7"
    # a shop id can never add a path, a parameter or a fragment
    assert build_url(woo, shop_id="1&quantity=99#x", quantity=1) == "https://shop.example.com/?add-to-cart=1%26quantity%3D99%23x&quantity=1"
    assert build_url(shopify, shop_id="a/b", quantity=1).endswith("/cart/a%2Fb:1")


@pytest.mark.parametrize("table, fragment", [
    ({"shop": "https://x.myshopify.com"}, "'plugins.shoplink.shop' must be the shop's host name"),
    ({"url_template": "ftp://x/{id}"}, "must be shopify, woocommerce or a URL starting with https://"),
    ({"url_template": "https://x/{sku}"}, "uses {sku}: the placeholders are"),
    ({"url_template": "https://x/cart"}, "must contain {id}"),
    ({"colour": "red"}, "'plugins.shoplink.colour' is not a setting"),
    ({"shop": 3}, "'plugins.shoplink.shop' must be text"),
])
def test_bad_settings_name_the_key(table: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        Settings.from_table(table)
    assert fragment in str(err.value)


def test_a_shop_template_without_a_shop_cannot_build() -> None:
    with pytest.raises(ValueError, match="set plugins.shoplink.shop"):
        build_url(Settings(), shop_id="1", quantity=1)


async def test_mapped_product_goes_to_the_shop_as_pending_payment(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins={"shoplink": {"shop": "my-store.myshopify.com"}}, load_entrypoints=True))
    app = client.app
    eid = await make_event(app)
    mapped = await make_product(app, "Mug", stock=5, event_id=eid)
    plain = await make_product(app, "Cap", stock=5, event_id=eid)
    staff = await staff_cookie(client, "assistant")
    resp = await client.put(f"/api/plugins/shoplink/products/{mapped}", json={"shop_id": "44012345678901"}, headers=staff)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["product"]["example_url"] == "https://my-store.myshopify.com/cart/44012345678901:1"
    resp = await client.put(f"/api/plugins/shoplink/products/{plain}", json={"shop_id": "bad id!"}, headers=staff)
    assert resp.status == 400 and "'shop_id' may hold" in (await resp.json())["error"]["message"]
    assert (await client.put("/api/plugins/shoplink/products/99999", json={"shop_id": "1"}, headers=staff)).status == 404
    await go_live(app, eid)
    viewer = await new_viewer(app, "Ann")
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": mapped, "quantity": 2}, headers=vh(viewer))
    assert resp.status == 201, await resp.text()
    order = (await resp.json())["order"]
    assert order["status"] == "pending_payment" and order["redirect_url"] == "https://my-store.myshopify.com/cart/44012345678901:2"
    assert await app[DB].fetchval("SELECT stock FROM products WHERE id = ?", (mapped,)) == 3  # held until the shop says paid
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": plain, "quantity": 1}, headers=vh(viewer))
    plain_order = (await resp.json())["order"]
    assert plain_order["status"] == "placed" and "redirect_url" not in plain_order  # pay later
    # staff mark it paid when the shop says so
    owner = await staff_cookie(client, "owner")
    resp = await client.post(f"/api/orders/{order['id']}/status", json={"status": "paid", "note": "Shopify #1001"}, headers=owner)
    assert resp.status == 200
    listing = await (await client.get("/api/plugins/shoplink/products", headers=staff)).json()
    assert [m["product_id"] for m in listing["products"]] == [mapped] and listing["problem"] is None
    assert (await (await client.delete(f"/api/plugins/shoplink/products/{mapped}", headers=staff)).json())["removed"] is True


async def test_unconfigured_shop_refuses_a_mapping(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=[shoplink]))
    pid = await make_product(client.app)
    resp = await client.put(f"/api/plugins/shoplink/products/{pid}", json={"shop_id": "1"}, headers=await staff_cookie(client, "owner"))
    assert resp.status == 409 and "set plugins.shoplink.shop" in (await resp.json())["error"]["message"]
