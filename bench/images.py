"""How fast the image step turns a downloaded picture into stored copies, and how much memory it takes.

For each kind of picture the script decodes, checks, resizes and stores (WebP at each width plus the
JPEG fallback, into a temporary MEDIA_ROOT) a batch of generated photos with grain, as the pipeline
does after the download. Each kind runs in a fresh process, so the peak memory it reports (the
process's peak resident set while it works, less what it held before the first picture) belongs to
that kind alone.

    .venv/bin/python bench/images.py
"""

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (width, height, format, grain, pictures in the batch). Photos have grain; the PNG is a graphic
# (flat gradients), as a PNG under the download limit would be.
KINDS = {
    "provider download, 1600 x 1067 JPEG": (1600, 1067, "JPEG", True, 20),
    "camera photo, 12 MP (4000 x 3000) JPEG": (4000, 3000, "JPEG", True, 6),
    "50 MP (8660 x 5773) JPEG": (8660, 5773, "JPEG", True, 3),
    "50 MP (8660 x 5773) PNG graphic": (8660, 5773, "PNG", False, 2),
}


def generated_picture(width: int, height: int, image_format: str, *, grain: bool) -> bytes:
    """Colour gradients, under Gaussian grain for a photo (so it compresses, and costs, like one)."""
    from PIL import Image

    red = Image.linear_gradient("L").resize((width, height))
    blue = red.transpose(Image.Transpose.ROTATE_180)
    green = red.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    channels = [red, green, blue]
    if grain:
        noise = Image.effect_noise((width, height), 30)
        channels = [Image.blend(channel, noise, 0.12) for channel in channels]
    buffer = io.BytesIO()
    options = {"quality": 88} if image_format == "JPEG" else {"compress_level": 6}
    Image.merge("RGB", channels).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_memory() -> None:
    """Start the process's peak resident set (VmHWM) again from its current size (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(kind: str, picture_path: str) -> dict:
    """Run in the child: process the batch and report the rate and the memory it took."""
    import django

    django.setup()
    from django.conf import settings

    from stories.images.check import check_image
    from stories.images.variants import store_variants

    count = KINDS[kind][-1]
    data = Path(picture_path).read_bytes()
    baseline = _status_mb("VmRSS")
    reset_peak_memory()
    started = time.perf_counter()
    for number in range(count):
        checked = check_image(
            data,
            max_pixels=settings.IMAGE_MAX_PIXELS,
            min_width=settings.IMAGE_MIN_WIDTH,
            needed_width=max(settings.IMAGE_VARIANT_WIDTHS),
        )
        store_variants(checked=checked, prefix=f"bench/{number}", widths=settings.IMAGE_VARIANT_WIDTHS)
        del checked
    elapsed = time.perf_counter() - started
    return {
        "kind": kind,
        "pictures": count,
        "file_mb": len(data) / 1_000_000,
        "seconds_each": elapsed / count,
        "per_second": count / elapsed,
        "peak_rss_mb": _status_mb("VmHWM"),
        "peak_over_baseline_mb": _status_mb("VmHWM") - baseline,
    }


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory(prefix="newsreader-bench-images-") as workdir:
        env = {
            **os.environ,
            "DEBUG": "true",
            "DJANGO_SETTINGS_MODULE": "newsreader.settings",
            "MEDIA_ROOT": str(Path(workdir) / "media"),
            "NEWSREADER_VAR_DIR": str(Path(workdir) / "var"),
            "PYTHONPATH": str(ROOT),
        }
        for kind, (width, height, image_format, grain, _) in KINDS.items():
            picture = Path(workdir) / f"picture.{image_format.lower()}"
            picture.write_bytes(generated_picture(width, height, image_format, grain=grain))
            child = subprocess.run(
                [sys.executable, __file__, "--measure", kind, str(picture)],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'picture':42} {'file MB':>8} {'s each':>8} {'per s':>7} {'peak RSS MB':>12} {'of which step':>14}")
    for row in results:
        print(
            f"{row['kind']:42} {row['file_mb']:8.2f} {row['seconds_each']:8.3f} {row['per_second']:7.2f} "
            f"{row['peak_rss_mb']:12.0f} {row['peak_over_baseline_mb']:14.0f}"
        )
    print("Each picture: decode and check, then WebP at 480/960/1600 px and one JPEG at 1600 px, written to disk.")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
    else:
        main()
