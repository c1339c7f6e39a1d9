"""Prometheus metrics at ``/metrics``: HTTP requests, WebSocket clients, bus events (one registry per app)."""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

METRICS: web.AppKey["Metrics"] = web.AppKey("metrics")


class _AppCollector(Collector):
    def __init__(self, app: web.Application):
        self.app = app

    def collect(self) -> Iterator[Any]:
        from .appkeys import BUS, HUB, LIVE

        hub = self.app.get(HUB)
        g = GaugeMetricFamily("lmserver_websocket_clients", "WebSocket clients connected", labels=["audience"])
        for audience in ("staff", "public"):
            g.add_metric([audience], hub.count(audience) if hub else 0)
        yield g
        if hub:
            yield CounterMetricFamily("lmserver_websocket_dropped", "WebSocket clients dropped as too slow", value=hub.dropped)
            yield CounterMetricFamily("lmserver_websocket_messages_sent", "WebSocket messages sent", value=hub.sent)
        bus = self.app.get(BUS)
        yield CounterMetricFamily("lmserver_bus_events", "Events published on the session bus", value=bus.published if bus else 0)
        live = self.app.get(LIVE)
        yield GaugeMetricFamily("lmserver_live", "1 while a session is live", value=1 if live and live.is_live else 0)


class Metrics:
    def __init__(self, app: web.Application):
        self.registry = CollectorRegistry()
        self.requests = Counter("lmserver_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("lmserver_http_request_seconds", "HTTP request time", ["route"], registry=self.registry)
        self.registry.register(_AppCollector(app))

    def render(self) -> bytes:
        return generate_latest(self.registry)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        info = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        m = request.app[METRICS]
        m.requests.labels(request.method, info, str(status)).inc()
        m.latency.labels(info).observe(time.perf_counter() - start)


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
