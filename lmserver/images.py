"""Checking and storing uploaded images (public API: plugins use it for their uploads too).

``check_image(data, ...)`` measures the image as a person sees it (EXIF orientation applied) and refuses,
with a reason a person can act on: an empty or oversized file,
something that is not an image (whatever its name), a type outside the allowed set, an image over the
pixel limit (decompression bombs are caught from the header, before decoding), an image smaller than a
required minimum, or a truncated file. ``store_image`` writes a checked image under
``<data_dir>/uploads`` with a random name and returns that name.
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

ALLOWED = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}


@dataclass(frozen=True)
class CheckedImage:
    format: str  # PNG, JPEG, WEBP
    width: int
    height: int
    has_alpha: bool
    data: bytes

    @property
    def extension(self) -> str:
        return ALLOWED[self.format]

    def open(self) -> Image.Image:
        """The decoded image, turned upright (EXIF orientation applied, as browsers show it)."""
        img = Image.open(io.BytesIO(self.data))
        img.load()
        return upright(img)


def check_image(data: bytes, *, max_bytes: int, max_pixels: int, min_size: tuple[int, int] | None = None,
                allowed: set[str] | None = None, what: str = "the image") -> CheckedImage:
    """Check an uploaded image's bytes: size, type (PNG, JPEG, WebP), pixel count, minimum dimensions.

    Raises 400/413/415 with a message naming ``what`` and saying how to fix it; returns the checked
    image (format, width, height, bytes) for :func:`store_image`.
    """
    allowed = allowed or set(ALLOWED)
    if not data:
        raise BadRequest(f"{what} is empty: choose a PNG, JPEG or WebP file")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{what} is too large: {len(data):,} bytes, at most {max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            img = Image.open(io.BytesIO(data))
            fmt = img.format or ""
            w, h = img.size
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"{what} has too many pixels: at most {max_pixels:,} allowed") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UnsupportedMediaType(f"{what} is not an image PNG, JPEG or WebP can read: upload a real image file") from None
    if _ORIENTATION_SWAPS.get(_orientation(img), False):  # a phone photo taken upright: show it upright
        w, h = h, w
    if fmt not in allowed:
        raise UnsupportedMediaType(f"{what} is a {fmt or 'unknown'} file: allowed types are " + ", ".join(sorted(allowed)))
    if w * h > max_pixels:
        raise PayloadTooLarge(f"{what} has too many pixels: {w}×{h} = {w * h:,}, at most {max_pixels:,}")
    if min_size and (w < min_size[0] or h < min_size[1]):
        raise BadRequest(f"{what} is too small: {w}×{h} pixels, at least {min_size[0]}×{min_size[1]} needed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # size already checked
            img.load()  # decode fully: catches truncated files
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UnsupportedMediaType(f"{what} is damaged or truncated: export it again and retry") from None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    return CheckedImage(fmt, w, h, has_alpha, data)


_ORIENTATION_SWAPS = {5: True, 6: True, 7: True, 8: True}


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block: treat as upright
        return 1


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (JPEG/WebP from phones), so width × height are what a person sees."""
    return ImageOps.exif_transpose(img) if _orientation(img) != 1 else img


def store_image(data_dir: Path, image: CheckedImage) -> str:
    """Write the checked image to ``<data_dir>/uploads`` atomically; return its file name."""
    folder = Path(data_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(12) + image.extension
    tmp = folder / (name + ".part")
    tmp.write_bytes(image.data)
    os.replace(tmp, folder / name)
    return name
