"""The program compositor: ordered RGBA overlay layers blended into I420 frames.

Plugins (banners, countdowns, product cards) show overlays through :class:`Compositor`
(``lmserver.api.compositor(app)``, with a z in one of the public bands ``lmserver.api.Z_*``)::

    compositor.set_layer("banner:1", image, x=40, y=40, opacity=0.9, z=10)
    compositor.move_layer("banner:1", x=800, y=40)
    compositor.remove_layer("banner:1")

Each layer is converted once, when it is set, to YUV planes plus an alpha plane (chroma alpha is
the 2x2 mean). Every program frame is then blended in place, inside each layer's rectangle only,
with integer math: ``dst = (dst * (256 - a) + src * a) >> 8``. With no layer shown, frames pass
through untouched. Layer changes may come from any thread; the worker thread that composites
reads an immutable snapshot.

``set_layer`` converts the image (about 10 ms for 480x360): from async code call it in a thread,
``await asyncio.to_thread(compositor.set_layer, ...)``. ``move_layer`` and ``remove_layer`` are cheap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Union

import av
import numpy as np
from PIL import Image

ImageLike = Union[np.ndarray, Image.Image]


@dataclass(frozen=True)
class LayerInfo:
    """What a layer looks like from outside: position and size in program pixels."""

    name: str
    x: int
    y: int
    width: int
    height: int
    opacity: float
    z: int


@dataclass(frozen=True)
class _PreparedLayer:
    info: LayerInfo
    # Pre-multiplied source (src * a) and inverse alpha (256 - a), uint16, per plane (Y, U, V).
    src_a: tuple[np.ndarray, np.ndarray, np.ndarray]
    inv_a: tuple[np.ndarray, np.ndarray, np.ndarray]
    # The converted planes and alpha at opacity 1.0, kept to change opacity or position cheaply.
    yuv: tuple[np.ndarray, np.ndarray, np.ndarray]
    alpha: tuple[np.ndarray, np.ndarray]


def _to_rgba(image: ImageLike, width: int | None, height: int | None) -> np.ndarray:
    if isinstance(image, Image.Image):
        pil = image.convert("RGBA")
    else:
        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            raise ValueError("a layer image must be a uint8 array of shape (height, width, 4) or (h, w, 3)")
        if arr.shape[2] == 3:
            arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
        pil = None
        if width is None and height is None:
            return np.ascontiguousarray(arr)
        pil = Image.fromarray(arr, "RGBA")
    w = width if width is not None else pil.width
    h = height if height is not None else pil.height
    if w <= 0 or h <= 0:
        raise ValueError("a layer must be at least 1x1 pixels")
    if (w, h) != pil.size:
        pil = pil.resize((w, h), Image.Resampling.LANCZOS)
    return np.asarray(pil, dtype=np.uint8)


def rgba_to_yuva(rgba: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Convert an even-sized RGBA image to BT.601 limited-range Y, U, V (4:2:0) and alphas (0..256)."""
    rgb = rgba[:, :, :3].astype(np.float32)
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    a = rgba[:, :, 3].astype(np.float32)
    h, w = a.shape

    def pool(x: np.ndarray) -> np.ndarray:
        return x.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3))

    a_sum = pool(a)
    safe = np.where(a_sum > 0, a_sum, 1.0)
    # Alpha-weighted chroma, so transparent pixels do not tint the edges.
    u_c = np.where(a_sum > 0, pool(u * a) / safe, 128.0)
    v_c = np.where(a_sum > 0, pool(v * a) / safe, 128.0)
    alpha_y = np.rint(a * 256.0 / 255.0).astype(np.uint16)
    alpha_c = np.rint(a_sum / 4.0 * 256.0 / 255.0).astype(np.uint16)
    planes = (
        np.clip(np.rint(y), 0, 255).astype(np.uint16),
        np.clip(np.rint(u_c), 0, 255).astype(np.uint16),
        np.clip(np.rint(v_c), 0, 255).astype(np.uint16),
    )
    return planes, (alpha_y, alpha_c)


def _prepare(info: LayerInfo, yuv: tuple[np.ndarray, np.ndarray, np.ndarray], alpha: tuple[np.ndarray, np.ndarray]) -> _PreparedLayer:
    scale = max(0.0, min(1.0, info.opacity))
    a_y = (alpha[0].astype(np.float32) * scale).astype(np.uint16)
    a_c = (alpha[1].astype(np.float32) * scale).astype(np.uint16)
    src_a = (yuv[0] * a_y, yuv[1] * a_c, yuv[2] * a_c)
    inv_a = (256 - a_y, 256 - a_c, 256 - a_c)
    return _PreparedLayer(info, src_a, inv_a, yuv, alpha)


def plane_view(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A writable (height, width) uint8 view over a frame plane (line_size may exceed width)."""
    arr = np.frombuffer(plane, np.uint8, count=plane.line_size * plane.height)
    return arr.reshape(plane.height, plane.line_size)[:, : plane.width]


class Compositor:
    """Ordered overlay layers, blended into program frames in place.

    All methods are thread-safe. Coordinates and sizes are program pixels; they are rounded to
    even numbers (4:2:0 chroma) and layers are clipped to the frame.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._layers: dict[str, _PreparedLayer] = {}
        self._snapshot: tuple[_PreparedLayer, ...] = ()

    def set_layer(
        self,
        name: str,
        image: ImageLike,
        x: int,
        y: int,
        width: int | None = None,
        height: int | None = None,
        opacity: float = 1.0,
        z: int = 0,
    ) -> LayerInfo:
        """Show (or replace) the layer ``name``: an RGBA image at (x, y), resized to width x height.

        Layers with a higher ``z`` are drawn on top; equal ``z`` keep insertion order.
        """
        if not name:
            raise ValueError("a layer needs a name")
        if not 0.0 <= opacity <= 1.0:
            raise ValueError("opacity must be between 0 and 1")
        rgba = _to_rgba(image, width, height)
        h, w = rgba.shape[:2]
        # 4:2:0 needs even sizes: crop one pixel row/column if odd.
        h2, w2 = h - h % 2, w - w % 2
        if h2 == 0 or w2 == 0:
            raise ValueError("a layer must be at least 2x2 pixels")
        rgba = rgba[:h2, :w2]
        yuv, alpha = rgba_to_yuva(rgba)
        info = LayerInfo(name, int(x) & ~1, int(y) & ~1, w2, h2, float(opacity), int(z))
        layer = _prepare(info, yuv, alpha)
        with self._lock:
            self._layers.pop(name, None)
            self._layers[name] = layer
            self._publish()
        return info

    def move_layer(self, name: str, x: int, y: int, *, z: int | None = None, opacity: float | None = None) -> LayerInfo:
        """Move a shown layer (and optionally change its z-order or opacity). KeyError if unknown."""
        with self._lock:
            old = self._layers[name]
            info = LayerInfo(
                name,
                int(x) & ~1,
                int(y) & ~1,
                old.info.width,
                old.info.height,
                old.info.opacity if opacity is None else float(opacity),
                old.info.z if z is None else int(z),
            )
            if opacity is not None and opacity != old.info.opacity:
                layer = _prepare(info, old.yuv, old.alpha)
            else:
                layer = _PreparedLayer(info, old.src_a, old.inv_a, old.yuv, old.alpha)
            self._layers[name] = layer
            self._publish()
            return info

    def remove_layer(self, name: str) -> bool:
        """Hide a layer; returns False if it was not shown."""
        with self._lock:
            found = self._layers.pop(name, None) is not None
            self._publish()
            return found

    def clear(self) -> None:
        """Remove every layer."""
        with self._lock:
            self._layers.clear()
            self._publish()

    def layers(self) -> list[LayerInfo]:
        """The shown layers, bottom first."""
        return [layer.info for layer in self._snapshot]

    def _publish(self) -> None:
        order = {name: i for i, name in enumerate(self._layers)}
        self._snapshot = tuple(sorted(self._layers.values(), key=lambda l: (l.info.z, order[l.info.name])))

    def composite(self, frame: av.VideoFrame) -> av.VideoFrame:
        """Blend the shown layers into ``frame`` (yuv420p) in place and return it.

        Keeps ``pts`` and ``time_base``. With no layer, returns the frame untouched.
        """
        snapshot = self._snapshot
        if not snapshot:
            return frame
        if frame.format.name != "yuv420p":
            reformatted = frame.reformat(format="yuv420p")
            reformatted.pts = frame.pts
            reformatted.time_base = frame.time_base
            frame = reformatted
        # Decoded frames may share memory with the decoder: writing into them corrupts later frames.
        frame.make_writable()
        fw, fh = frame.width, frame.height
        planes = [plane_view(p) for p in frame.planes[:3]]
        for layer in snapshot:
            info = layer.info
            x0, y0 = max(info.x, 0), max(info.y, 0)
            x1, y1 = min(info.x + info.width, fw - fw % 2), min(info.y + info.height, fh - fh % 2)
            if x1 <= x0 or y1 <= y0:
                continue
            sx, sy = x0 - info.x, y0 - info.y
            for i, dst_plane in enumerate(planes):
                d = 0 if i == 0 else 1
                dx0, dy0, dx1, dy1 = x0 >> d, y0 >> d, x1 >> d, y1 >> d
                ssx, ssy = sx >> d, sy >> d
                dst = dst_plane[dy0:dy1, dx0:dx1]
                h, w = dst.shape
                src_a = layer.src_a[i][ssy : ssy + h, ssx : ssx + w]
                inv_a = layer.inv_a[i][ssy : ssy + h, ssx : ssx + w]
                tmp = dst * inv_a  # uint8 * uint16 -> uint16
                tmp += src_a
                tmp >>= 8
                dst[...] = tmp
        return frame
