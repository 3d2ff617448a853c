"""A Pexels API on 127.0.0.1 for the image tests: ``GET /v1/search`` in the real JSON shape, with the
Authorization check and the X-Ratelimit-* headers, and the photos' bytes, drawn with Pillow.

Queue a ``Reply`` with ``fail_next`` to make the next search answer 401, 429, 5xx or malformed JSON;
set ``results[query]`` to choose which photos a query finds (by default every photo matches); replace a
photo's bytes with ``serve_photo(photo_id, Reply(...))`` for broken, huge or slow downloads.

    def test_story_gets_a_photo(pexels):
        pexels.add_photo(3573351, photographer="Pavel Danilyuk", alt="A robot toy")
        choose_story_image(story_id=story.pk)
"""

import io
import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image, ImageDraw

from tests.httpserver import LocalHTTPServer, Reply, Request

API_KEY = "test-pexels-key"


def photo_bytes(
    width: int = 1200,
    height: int = 800,
    *,
    image_format: str = "JPEG",
    colour: tuple[int, int, int] = (40, 110, 170),
    exif_orientation: int | None = None,
) -> bytes:
    """A picture with some structure (a gradient sky, a sun, a hill), so encoders have real work."""
    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, max(1, height // 64)):
        shade = int(80 * y / height)
        draw.rectangle([0, y, width, y + height // 64], fill=tuple(min(255, c + shade) for c in colour))
    draw.ellipse([width // 10, height // 10, width // 4, height // 10 + width // 7], fill=(250, 210, 80))
    draw.polygon([(0, height), (width // 2, height // 2), (width, height)], fill=(60, 120, 50))
    buffer = io.BytesIO()
    options: dict = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        exif[0x010F] = "Test Camera Maker"
        options["exif"] = exif.tobytes()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


@dataclass
class FakePhoto:
    photo_id: int
    photographer: str
    alt: str
    width: int
    height: int
    body: bytes | None = None


@dataclass
class PexelsServer:
    """Serves the search API and the photos; records every search it answers."""

    server: LocalHTTPServer
    api_key: str = API_KEY
    limit: int = 200
    remaining: int = 200
    reset_in_seconds: int = 3600
    photos: dict[int, FakePhoto] = field(default_factory=dict)
    results: dict[str, list[int]] = field(default_factory=dict)
    searches: list[dict[str, str]] = field(default_factory=list)
    _failures: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server.route("/v1/search", self._search)

    @property
    def base_url(self) -> str:
        return self.server.url("/v1")

    def add_photo(
        self,
        photo_id: int,
        *,
        photographer: str = "Pavel Danilyuk",
        alt: str = "Close-up of a robotic toy against a gradient background",
        width: int = 2400,
        height: int = 1600,
        body: bytes | None = None,
    ) -> FakePhoto:
        photo = FakePhoto(photo_id, photographer, alt, width, height, body)
        self.photos[photo_id] = photo
        self.server.route(self.photo_path(photo_id), lambda request: self._photo(request, photo))
        return photo

    def serve_photo(self, photo_id: int, handler: Reply | object) -> None:
        """Answer downloads of the photo with `handler` (a Reply, or a function of the request)."""
        self.server.route(self.photo_path(photo_id), handler)

    def fail_next(self, reply: Reply) -> None:
        self._failures.append(reply)

    @staticmethod
    def photo_path(photo_id: int) -> str:
        return f"/photos/{photo_id}/pexels-photo-{photo_id}.jpeg"

    def downloads(self) -> list[Request]:
        return [request for request in self.server.requests if request.path.startswith("/photos/")]

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(max(0, self.remaining)),
            "X-Ratelimit-Reset": str(int(time.time()) + self.reset_in_seconds),
        }

    def _search(self, request: Request) -> Reply:
        params = {name: values[0] for name, values in parse_qs(urlsplit(request.path).query).items()}
        if request.headers.get("Authorization") != self.api_key:
            return Reply(status=401, body=b'{"error": "Unauthorized"}', headers={"Content-Type": "application/json"})
        self.searches.append(params)
        if self._failures:
            return self._failures.pop(0)
        if self.remaining <= 0:
            return Reply(status=429, body=b'{"error": "Too many requests"}', headers=self._headers())
        self.remaining -= 1
        query = params.get("query", "")
        per_page, page = int(params.get("per_page", "15")), int(params.get("page", "1"))
        found = self.results.get(query, list(self.photos))
        ids = found[(page - 1) * per_page : page * per_page]
        body = {
            "total_results": len(found),
            "page": page,
            "per_page": per_page,
            "photos": [self._photo_json(self.photos[photo_id]) for photo_id in ids],
        }
        return Reply(body=json.dumps(body).encode(), headers=self._headers())

    def _photo_json(self, photo: FakePhoto) -> dict:
        original = self.server.url(self.photo_path(photo.photo_id))
        slug = photo.photographer.lower().replace(" ", "-")
        return {
            "id": photo.photo_id,
            "width": photo.width,
            "height": photo.height,
            "url": f"https://www.pexels.com/photo/photo-{photo.photo_id}/",
            "photographer": photo.photographer,
            "photographer_url": f"https://www.pexels.com/@{slug}",
            "photographer_id": 1000 + photo.photo_id,
            "avg_color": "#4A6B8A",
            "src": {
                "original": original,
                "large2x": f"{original}?auto=compress&cs=tinysrgb&dpr=2&h=650&w=940",
                "large": f"{original}?auto=compress&cs=tinysrgb&h=650&w=940",
                "medium": f"{original}?auto=compress&cs=tinysrgb&h=350",
                "small": f"{original}?auto=compress&cs=tinysrgb&h=130",
                "portrait": f"{original}?auto=compress&cs=tinysrgb&fit=crop&h=1200&w=800",
                "landscape": f"{original}?auto=compress&cs=tinysrgb&fit=crop&h=627&w=1200",
                "tiny": f"{original}?auto=compress&cs=tinysrgb&dpr=1&fit=crop&h=200&w=280",
            },
            "liked": False,
            "alt": photo.alt,
        }

    def _photo(self, request: Request, photo: FakePhoto) -> Reply:
        """The photo's bytes; like Pexels' CDN, ``w`` asks for a narrower copy."""
        if photo.body is not None:
            return Reply(body=photo.body, headers={"Content-Type": "image/jpeg"})
        params = parse_qs(urlsplit(request.path).query)
        width = min(photo.width, int(params.get("w", [photo.width])[0]))
        height = round(photo.height * width / photo.width)
        colour = (30 + photo.photo_id * 37 % 200, 90, 160)
        return Reply(body=photo_bytes(width, height, colour=colour), headers={"Content-Type": "image/jpeg"})


@pytest.fixture
def pexels(http_server, settings):
    """A Pexels API on the local HTTP server, with the provider pointed at it and its key set."""
    settings.PEXELS_API_KEY = API_KEY
    settings.IMAGE_PROVIDERS = ["pexels"]
    fake = PexelsServer(http_server)
    settings.PEXELS_API_URL = fake.base_url
    return fake


@pytest.fixture
def media(settings, tmp_path):
    """Stored files go to a fresh folder; returns a function listing what is in it."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)

    def files() -> list[str]:
        return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())

    return files
