"""Uploaded images are measured and shown upright: a phone's portrait photo carries an EXIF orientation."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from lmserver.images import check_image, store_image


def rotated_jpeg(w: int, h: int, orientation: int) -> bytes:
    """A w×h JPEG whose EXIF says to rotate it (6: 90° clockwise), with a red top-left marker as stored."""
    img = Image.new("RGB", (w, h), (0, 0, 200))
    img.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_exif_rotated_photo_is_measured_and_opened_upright(tmp_path: Path) -> None:
    data = rotated_jpeg(360, 480, 6)  # stored portrait, shown landscape
    checked = check_image(data, max_bytes=10**6, max_pixels=10**7, min_size=(480, 360))  # passes the billboard minimum
    assert (checked.width, checked.height) == (480, 360)
    img = checked.open()
    assert img.size == (480, 360)
    # orientation 6 turns the stored top-left corner to the top-right
    r, g, b = img.convert("RGB").getpixel((470, 10))
    assert r > 200 and b < 80
    assert store_image(tmp_path, checked).endswith(".jpg")


def test_upright_photo_is_unchanged() -> None:
    checked = check_image(rotated_jpeg(480, 360, 1), max_bytes=10**6, max_pixels=10**7)
    assert (checked.width, checked.height) == (480, 360)
    r, g, b = checked.open().convert("RGB").getpixel((10, 10))
    assert r > 200 and b < 80
