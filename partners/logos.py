"""Logos: decoded whole before they are kept (R18), apart from the pure rules so that
nothing else (the workflows' sandbox among them) loads Pillow."""

from __future__ import annotations

import io

from PIL import Image

from partners.errors import ErrorCode, Refused

LOGO_MAX_PIXELS = 2048
_LOGO_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def decode_logo(data: bytes) -> str:
    """The logo's media type, once Pillow has decoded it whole, whatever the upload
    claims; refused: anything but a PNG, JPEG or WebP that decodes (SVG included: it can
    carry scripts), or a canvas over LOGO_MAX_PIXELS a side, judged from its header
    before a pixel is decoded (a small PNG can declare a canvas that fills a viewer's
    memory). Seconds of CPU at most for 512 KiB: run it off the event loop."""
    try:
        with Image.open(io.BytesIO(data), formats=list(_LOGO_FORMATS)) as image:
            if max(image.size) > LOGO_MAX_PIXELS:
                raise _too_many_pixels(f"The logo is {image.width} x {image.height} pixels")
            image.load()
            return _LOGO_FORMATS[str(image.format)]
    except Image.DecompressionBombError:  # Pillow's own bound, far above ours, met first
        raise _too_many_pixels("The logo declares a canvas of hundreds of millions of pixels") from None
    except (OSError, ValueError, SyntaxError):
        raise Refused(
            ErrorCode.UNSUPPORTED_LOGO, "The logo must be a PNG, JPEG or WebP image that opens whole."
        ) from None


def _too_many_pixels(what: str) -> Refused:
    return Refused(
        ErrorCode.LOGO_DIMENSIONS,
        f"{what}; at most {LOGO_MAX_PIXELS} x {LOGO_MAX_PIXELS}.",
        max_pixels=LOGO_MAX_PIXELS,
    )
