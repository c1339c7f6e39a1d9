"""Settings and URL templates of the shop-link checkout (pure functions: no app, no database)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

from aiohttp import web

from lmserver.api import ConfigError

NAME = "shoplink"

#: the URL patterns of the common shops; ``{shop}`` is the shop's host, ``{id}`` the mapped product/variant id
PRESETS = {
    # Shopify's cart permalink: the variant in the cart, straight to checkout
    "shopify": "https://{shop}/cart/{id}:{qty}",
    # WooCommerce's add-to-cart link (a product id, or a variation id)
    "woocommerce": "https://{shop}/?add-to-cart={id}&quantity={qty}",
}
#: what a template may use: the shop, the mapped id, the quantity, the lmserver order id and product id
PLACEHOLDERS = ("shop", "id", "qty", "order", "product")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:\d{1,5})?")
#: a shop's product or variant id: letters, digits and - _ . : / (Shopify's are numbers, others' may be SKUs)
SHOP_ID = re.compile(r"[A-Za-z0-9_.:/-]{1,100}")


@dataclass(frozen=True)
class Settings:
    """``[plugins.shoplink]``: each field is a key, with its default."""

    #: the shop's host name, e.g. "my-store.myshopify.com" ({shop} in the template)
    shop: str = ""
    #: "shopify", "woocommerce", or a template of your own starting with https:// (or http://), with {id}
    url_template: str = "shopify"

    @property
    def template(self) -> str:
        return PRESETS.get(self.url_template, self.url_template)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Settings":
        """Check the table; raises :class:`ConfigError` naming the key (``plugins.shoplink.<key>``)."""
        known = ("shop", "url_template")
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"'plugins.{NAME}.{key}' is not a setting of the shoplink plugin; known: {', '.join(known)}")
            if not isinstance(value, str):
                raise ConfigError(f"'plugins.{NAME}.{key}' must be text, got {value!r}")
        settings = cls(**dict(table))
        if settings.shop and not _HOST.fullmatch(settings.shop):
            raise ConfigError(f"'plugins.{NAME}.shop' must be the shop's host name like my-store.myshopify.com"
                              f" (no https://, no path), got {settings.shop!r}")
        check_template(settings.template)
        return settings

    def problem(self) -> str | None:
        """Why this shop cannot take orders yet (None when it can)."""
        if "{shop}" in self.template and not self.shop:
            return f"set plugins.{NAME}.shop to your shop's host name first (the URL template uses {{shop}})"
        return None


def check_template(template: str) -> None:
    """A URL template: http(s), known placeholders only, ``{id}`` present; ConfigError naming what is wrong."""
    where = f"'plugins.{NAME}.url_template'"
    if not template.startswith(("https://", "http://")):
        raise ConfigError(f"{where} must be shopify, woocommerce or a URL starting with https://, got {template[:60]!r}")
    names = _PLACEHOLDER.findall(template)
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ConfigError(f"{where} uses {{{unknown[0]}}}: the placeholders are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    if "id" not in names:
        raise ConfigError(f"{where} must contain {{id}} (the shop's product or variant id)")


def build_url(settings: Settings, *, shop_id: str, quantity: int, order_id: int | None = None, product_id: int | None = None) -> str:
    """The shop URL of one purchase; every value is URL-encoded (a shop id can never add a path or a parameter)."""
    problem = settings.problem()
    if problem:
        raise ValueError(problem)
    values = {"shop": settings.shop, "id": quote(str(shop_id), safe=""), "qty": str(int(quantity)),
              "order": "" if order_id is None else str(int(order_id)), "product": "" if product_id is None else str(int(product_id))}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], settings.template)


SETTINGS = web.AppKey("shoplink_settings", Settings)

#: ``register_migrations``: ordered ``(name, sql)`` steps; never edit one that has shipped, add the next.
MIGRATIONS: list[tuple[str, str]] = [("001_products", """
-- a catalog product → the shop's product or variant id
CREATE TABLE shoplink_products (
    product_id INTEGER PRIMARY KEY REFERENCES products(id) ON DELETE CASCADE,
    shop_id TEXT NOT NULL,
    updated_at REAL NOT NULL
);
""")]
