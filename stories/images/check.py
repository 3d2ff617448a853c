"""Deciding whether downloaded bytes are a picture we may store: decode them, within limits, with Pillow.

Only raster formats are opened (JPEG, PNG, WebP, GIF's first frame); SVG and anything else marked up
is refused before a parser sees it. The pixel count is checked from the header, before any pixel is
decoded, so a small file that would expand to gigabytes is refused cheaply. What comes out is a plain
RGB image turned the way its EXIF orientation says, with no EXIF, XMP or comments left on it.
"""

import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# EXIF orientations that swap width and height.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_MARKUP_SNIFF_BYTES = 1024


class ImageRejected(Exception):
    """The bytes are not a picture we accept; ``str(error)`` says why, in words a moderator can act on."""


@dataclass(frozen=True)
class CheckedImage:
    """A decoded picture ready to resize. ``width`` and ``height`` are the original's, upright;
    ``image`` may be smaller when the decoder could skip detail no stored size needs."""

    image: Image.Image
    format: str
    width: int
    height: int
    icc_profile: bytes | None


def check_image(data: bytes, *, max_pixels: int, min_width: int = 1, needed_width: int | None = None) -> CheckedImage:
    """Decode `data` as a raster picture or raise ImageRejected.

    `needed_width` lets a JPEG be decoded at a reduced scale (1/2, 1/4, 1/8) as long as the result
    stays at least that wide, which saves most of the time and memory for large photographs."""
    if not data:
        raise ImageRejected("the download was empty")
    markup = _markup_kind(data)
    if markup:
        raise ImageRejected(f"the download is {markup}, not a JPEG, PNG, WebP or GIF picture")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its own limit and twice that; we refuse outright.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as opened:
                return _decode(opened, max_pixels=max_pixels, min_width=min_width, needed_width=needed_width)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(f"the picture is too large to decode safely (a decompression bomb?): {error}") from error
    except UnidentifiedImageError as error:
        raise ImageRejected("the download is not a JPEG, PNG, WebP or GIF picture") from error
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as error:
        # Pillow reports truncated and corrupt data through these.
        raise ImageRejected(f"the picture is truncated or corrupt ({error})") from error


def _decode(opened: Image.Image, *, max_pixels: int, min_width: int, needed_width: int | None) -> CheckedImage:
    image_format = opened.format or ""
    stored_width, stored_height = opened.size
    if stored_width < 1 or stored_height < 1:
        raise ImageRejected("the picture has no pixels")
    if stored_width * stored_height > max_pixels:
        raise ImageRejected(
            f"the picture is {stored_width} x {stored_height} pixels, more than the {max_pixels:,} allowed "
            "(a decompression bomb, or a photo far larger than any page needs)"
        )
    orientation = opened.getexif().get(0x0112, 1)
    width, height = (
        (stored_height, stored_width) if orientation in _TRANSPOSED_ORIENTATIONS else (stored_width, stored_height)
    )
    if width < min_width:
        raise ImageRejected(f"the picture is only {width} pixels wide; at least {min_width} are needed")
    if image_format == "JPEG" and needed_width and needed_width < width:
        scale = needed_width / width
        opened.draft("RGB", (math.ceil(stored_width * scale), math.ceil(stored_height * scale)))
    opened.seek(0)  # the first frame of an animation
    opened.load()
    icc_profile = opened.info.get("icc_profile")
    upright = ImageOps.exif_transpose(opened) if orientation != 1 else opened
    # The opened file's pixels go when it closes, so what is returned is always a new image.
    image = _flattened(upright, copy=upright is opened)
    image.info = {}
    return CheckedImage(image=image, format=image_format, width=width, height=height, icc_profile=icc_profile)


def _flattened(image: Image.Image, *, copy: bool) -> Image.Image:
    """RGB on white: transparency has no meaning for a hero image, and JPEG cannot keep it."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode != "RGB":
        return image.convert("RGB")
    return image.copy() if copy else image


def _markup_kind(data: bytes) -> str:
    """ "an SVG drawing" or "an HTML page" when the bytes are markup, whatever the server called them."""
    head = data[:_MARKUP_SNIFF_BYTES].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head.startswith(b"<"):
        return ""
    if b"<svg" in head:
        return "an SVG drawing (SVG can carry scripts and is never accepted)"
    if b"<html" in head or b"<!doctype html" in head or b"<head" in head or b"<body" in head:
        return "an HTML page"
    return "markup (XML or HTML)"
