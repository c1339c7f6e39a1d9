"""Shop-link checkout: Buy sends the viewer to the studio's own web shop, with the product in the cart.

For sellers who already run a web shop (Shopify, WooCommerce, any shop with an add-to-cart link): each
catalog product is mapped to the shop's product or variant id, and when a viewer buys a mapped product the
order is recorded as ``pending_payment`` and the viewer page goes to the shop's cart-permalink or
add-to-cart URL, built from a URL template. The shop takes the payment and the address; staff mark the order
``paid`` on the Orders page when the shop says so. An unmapped product goes on to the next checkout (the
core's "pay later").

Built on the public plugin API only (:mod:`lmserver.api`), registered through an entry point like any
third-party plugin:

- ``__init__.py`` (this file): the hook implementations;
- ``links.py``: settings and the URL templates (pure functions, tested by the URLs they build);
- ``views.py``: the routes that map products to shop ids, and the owner's page for them (``/p/shoplink/``,
  "Shop links" in the menu).

Settings (``config.toml``)::

    [plugins.shoplink]
    shop = "my-store.myshopify.com"   # the shop's host name ({shop} in the template)
    url_template = "shopify"          # "shopify", "woocommerce", or your own template (see links.py)
"""

from __future__ import annotations

import logging

from aiohttp import web

from lmserver import api
from lmserver.api import CheckoutRequest, CheckoutResult, MenuLink, User, hookimpl

from . import links, views
from .links import MIGRATIONS, NAME

PLUGIN_NAME = NAME
__version__ = "1.0"
log = logging.getLogger(__name__)


@hookimpl
def register_routes(app: web.Application) -> list[web.RouteDef]:
    app[links.SETTINGS] = links.Settings.from_table(api.plugin_config(app, NAME))
    return views.routes()


@hookimpl
def menu_links(request: web.Request, user: User) -> list[MenuLink]:
    return [MenuLink("Shop links", views.PAGE, order=80)] if user.can(views.PAGE_PERMISSION) else []


@hookimpl
def register_migrations() -> list[tuple[str, str]]:
    return MIGRATIONS


@hookimpl
async def checkout(app: web.Application, request: CheckoutRequest) -> CheckoutResult | None:
    """A mapped product: pending payment, and the viewer goes to the shop. Unmapped: the next checkout decides."""
    shop_id = await api.db(app).fetchval("SELECT shop_id FROM shoplink_products WHERE product_id = ?", (request.product_id,))
    if shop_id is None:
        return None
    url = links.build_url(app[links.SETTINGS], shop_id=shop_id, quantity=request.quantity, order_id=request.order_id,
                          product_id=request.product_id)
    log.info("shoplink: order %s of product %s goes to the shop as %s", request.order_id, request.product_id, shop_id)
    return CheckoutResult(status="pending_payment", redirect_url=url)
