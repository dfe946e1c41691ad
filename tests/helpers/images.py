"""Real images for the logo tests, made here with Pillow: what a person uploads."""

from __future__ import annotations

import io

from PIL import Image


def image(kind: str, width: int = 2, height: int = 2) -> bytes:
    """A small picture in `kind` (PNG, JPEG or WEBP) that decodes whole."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (24, 73, 169)).save(out, kind)
    return out.getvalue()
