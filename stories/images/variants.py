"""Resized copies of a checked picture, stored through Django's storage API (local files or S3).

Each picture is kept at a few widths as WebP, for `srcset`, plus one JPEG at the largest width for
browsers and link previews that take no WebP. Every copy is encoded in memory first and only then
written; if any write fails, the ones already written are deleted, so no partial set stays behind.
"""

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from .check import CheckedImage

logger = logging.getLogger(__name__)

WEBP_QUALITY = 80
JPEG_QUALITY = 82


class VariantStoreError(Exception):
    """The copies could not be written to storage; none of them were kept."""


@dataclass(frozen=True)
class StoredVariant:
    """One stored copy: its storage name, size in pixels and format ("webp" or "jpeg")."""

    name: str
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class StoredImage:
    """The stored copies of one picture, largest last."""

    variants: tuple[StoredVariant, ...]

    @classmethod
    def from_json(cls, data: list[dict]) -> "StoredImage":
        return cls(variants=tuple(StoredVariant(**item) for item in data))

    def as_json(self) -> list[dict]:
        return [asdict(variant) for variant in self.variants]

    @property
    def webp(self) -> list[StoredVariant]:
        return sorted((v for v in self.variants if v.format == "webp"), key=lambda v: v.width)

    @property
    def fallback(self) -> StoredVariant:
        """The JPEG every browser can show: the page's `src` and the link preview's picture."""
        return next(v for v in self.variants if v.format == "jpeg")

    def srcset(self, url: Callable[[str], str] | None = None) -> str:
        """The WebP copies as an HTML srcset, with the storage's URLs unless `url` says otherwise."""
        url = url or default_storage.url
        return ", ".join(f"{url(variant.name)} {variant.width}w" for variant in self.webp)


def variant_widths(original_width: int, widths: Sequence[int]) -> list[int]:
    """The widths to store: the configured ones, never wider than the original (no upscaling)."""
    return sorted({min(width, original_width) for width in widths if width > 0})


def store_variants(*, checked: CheckedImage, prefix: str, widths: Sequence[int]) -> StoredImage:
    """Resize, encode and store `checked` under names starting with `prefix`. Raises VariantStoreError."""
    encoded = _encode_all(checked, widths=widths, prefix=prefix)
    stored: list[StoredVariant] = []
    try:
        for variant, data in encoded:
            name = default_storage.save(variant.name, ContentFile(data))
            stored.append(StoredVariant(name=name, width=variant.width, height=variant.height, format=variant.format))
    except Exception as error:
        # Any storage failure (disk full, S3 down, permissions) leaves nothing half-written behind.
        delete_variants(stored)
        raise VariantStoreError(f"could not store the resized picture: {error}") from error
    return StoredImage(variants=tuple(stored))


def delete_variants(variants: Sequence[StoredVariant]) -> None:
    for variant in variants:
        try:
            default_storage.delete(variant.name)
        except Exception as error:
            logger.warning("Could not delete stored image %s: %s", variant.name, error)


def _encode_all(checked: CheckedImage, *, widths: Sequence[int], prefix: str) -> list[tuple[StoredVariant, bytes]]:
    """Largest first, each smaller size resized from the one before (cheaper, and as sharp)."""
    sizes = variant_widths(checked.width, widths)
    encoded: list[tuple[StoredVariant, bytes]] = []
    current = checked.image
    for index, width in enumerate(reversed(sizes)):
        height = max(1, round(width * checked.height / checked.width))
        if current.size != (width, height):
            current = current.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        webp = _encode(current, "WEBP", icc_profile=checked.icc_profile, quality=WEBP_QUALITY, method=4)
        encoded.append((StoredVariant(f"{prefix}-{width}w.webp", width, height, "webp"), webp))
        if index == 0:
            jpeg = _encode(
                current, "JPEG", icc_profile=checked.icc_profile, quality=JPEG_QUALITY, optimize=True, progressive=True
            )
            encoded.append((StoredVariant(f"{prefix}-{width}w.jpg", width, height, "jpeg"), jpeg))
    return encoded


def _encode(image: Image.Image, image_format: str, *, icc_profile: bytes | None, **options) -> bytes:
    buffer = io.BytesIO()
    if icc_profile:
        options["icc_profile"] = icc_profile
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()
