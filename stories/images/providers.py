"""Image providers: where a licensed stock photo comes from when a source's own pictures may not be shown.

A provider answers one question, ``search(query=..., per_page=...)``, with ``Photo``s carrying the credit
it asks for, and fails with a ``ProviderError`` that says why and whether trying later may help. Its
rate limit is shared by every worker through the cache: once the provider says the quota is spent (its
remaining-quota headers, or a 429), no worker asks again before the time it named. Pexels is the first
provider; another (Unsplash, say) is one more class here and one more entry in ``PROVIDERS``.
"""

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.core.cache import cache

from stories.importing import fetch

from .models import web_url

logger = logging.getLogger(__name__)

API_RESPONSE_MAX_BYTES = 2 * 1024 * 1024
# A reset time further away than this is not believed (a broken header must not pause searches for years).
MAX_PAUSE_SECONDS = 31 * 24 * 3600


class ProviderError(Exception):
    """The provider could not answer. ``transient`` says trying later may succeed; ``retry_after`` says
    when, in seconds, if known."""

    transient = False

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message, retry_after)
        self.message = message
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class ProviderNotConfigured(ProviderError):
    """The provider is unknown, or has no API key."""


class ProviderAuthFailed(ProviderError):
    """The provider refused the API key (401 or 403)."""


class ProviderRateLimited(ProviderError):
    """The provider's quota is spent (it answered 429, or said no requests remain); nothing was asked."""

    transient = True


class ProviderUnavailable(ProviderError):
    """The provider failed (5xx), timed out or could not be reached."""

    transient = True


class ProviderBadResponse(ProviderError):
    """The provider answered with something that is not the JSON its API describes."""


@dataclass(frozen=True)
class Photo:
    """One search result, with everything the credit line and the download need."""

    provider: str
    photo_id: str
    download_url: str
    page_url: str
    photographer: str
    photographer_url: str
    alt: str
    width: int | None
    height: int | None


class ImageProvider(ABC):
    """A stock photo service. ``name`` is stored with each photo; ``label`` is what the credit line says."""

    name: str
    label: str

    @abstractmethod
    def is_configured(self) -> bool:
        """True when the provider can be asked (its API key is set)."""

    @abstractmethod
    def search(self, *, query: str, per_page: int, page: int = 1) -> list[Photo]:
        """Landscape photos for `query`, best first, `per_page` at a time. Raises ProviderError."""

    # Rate limits, shared by every worker through the cache

    @property
    def _pause_key(self) -> str:
        return f"newsreader:images:{self.name}:paused_until"

    def paused_until(self) -> float | None:
        until = cache.get(self._pause_key)
        return until if until and until > time.time() else None

    def pause(self, *, seconds: float) -> None:
        seconds = max(1.0, min(seconds, MAX_PAUSE_SECONDS))
        cache.set(self._pause_key, time.time() + seconds, timeout=int(seconds) + 1)

    def check_not_paused(self) -> None:
        until = self.paused_until()
        if until is not None:
            raise ProviderRateLimited(
                f"{self.label}'s request quota is used up until {_clock(until)}; no search was made",
                retry_after=max(1, round(until - time.time())),
            )


class PexelsProvider(ImageProvider):
    """Pexels (https://www.pexels.com/api/): free photos, credited "Photo by … on Pexels", both linked."""

    name = "pexels"
    label = "Pexels"

    def __init__(self, *, api_key: str, base_url: str, download_width: int) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.download_width = download_width

    @classmethod
    def from_settings(cls) -> "PexelsProvider":
        return cls(
            api_key=settings.PEXELS_API_KEY,
            base_url=settings.PEXELS_API_URL,
            download_width=max(settings.IMAGE_VARIANT_WIDTHS),
        )

    def is_configured(self) -> bool:
        return bool(self.api_key)

    def search(self, *, query: str, per_page: int, page: int = 1) -> list[Photo]:
        if not self.is_configured():
            raise ProviderNotConfigured("Pexels has no API key; set PEXELS_API_KEY")
        self.check_not_paused()
        params = {"query": query, "orientation": "landscape", "per_page": str(per_page), "page": str(page)}
        url = str(httpx.URL(f"{self.base_url}/search", params=params))
        try:
            response = fetch.fetch(
                url,
                headers={"Authorization": self.api_key, "Accept": "application/json"},
                max_bytes=API_RESPONSE_MAX_BYTES,
                deadline=settings.IMAGE_API_DEADLINE_SECONDS,
            )
        except fetch.HTTPStatusError as error:
            raise self._status_error(error) from error
        except fetch.FetchError as error:
            if error.transient:
                raise ProviderUnavailable(f"Pexels could not be reached: {error}") from error
            raise ProviderError(f"Pexels could not be asked: {error}") from error
        self._note_quota(response.headers)
        return self._photos(response.body, query=query)

    def _status_error(self, error: fetch.HTTPStatusError) -> ProviderError:
        if error.status in (401, 403):
            return ProviderAuthFailed(
                f"Pexels refused the API key (HTTP {error.status}); check PEXELS_API_KEY",
            )
        if error.status == 429:
            wait = error.retry_after or settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS
            self.pause(seconds=wait)
            return ProviderRateLimited(
                f"Pexels answered 429 Too Many Requests; searches pause until {_clock(time.time() + wait)}",
                retry_after=wait,
            )
        if error.status >= 500:
            return ProviderUnavailable(
                f"Pexels failed (HTTP {error.status}); it will be asked again later", retry_after=error.retry_after
            )
        return ProviderBadResponse(f"Pexels answered HTTP {error.status} to a search")

    def _note_quota(self, headers: Mapping[str, str]) -> None:
        """Pexels sends X-Ratelimit-Remaining and X-Ratelimit-Reset (a UNIX time) with each success."""
        remaining, reset = _int(headers.get("X-Ratelimit-Remaining")), _int(headers.get("X-Ratelimit-Reset"))
        if remaining is None or remaining > 0:
            return
        wait = (reset - time.time()) if reset else settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS
        if wait <= 0 or wait > MAX_PAUSE_SECONDS:
            wait = settings.IMAGE_RATE_LIMIT_BACKOFF_SECONDS
        self.pause(seconds=wait)
        logger.warning("Pexels request quota is used up; image searches pause until %s.", _clock(time.time() + wait))

    def _photos(self, body: bytes, *, query: str) -> list[Photo]:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise ProviderBadResponse(f"Pexels answered with malformed JSON ({error})") from error
        if not isinstance(data, dict) or not isinstance(data.get("photos"), list):
            raise ProviderBadResponse('Pexels answered JSON without a "photos" list')
        photos = [photo for item in data["photos"] if (photo := self._photo(item))]
        skipped = len(data["photos"]) - len(photos)
        if skipped:
            logger.info("Pexels search for %r: %d results lacked what a credit needs; left out.", query, skipped)
        return photos

    def _photo(self, item: object) -> Photo | None:
        if not isinstance(item, dict) or not isinstance(item.get("src"), dict):
            return None
        photo_id = item.get("id")
        original = web_url(item["src"].get("original"))
        page_url = web_url(item.get("url"))
        photographer = item.get("photographer")
        if not isinstance(photo_id, int | str) or not str(photo_id).strip() or not original or not page_url:
            return None
        if not isinstance(photographer, str) or not photographer.strip():
            return None
        alt = item.get("alt")
        return Photo(
            provider=self.name,
            photo_id=str(photo_id).strip()[:200],
            # Pexels resizes on its CDN: ask for the largest width we store, not the multi-megabyte original.
            download_url=str(
                httpx.URL(original).copy_merge_params({"auto": "compress", "cs": "tinysrgb", "w": self.download_width})
            ),
            page_url=page_url,
            photographer=photographer.strip()[:200],
            photographer_url=web_url(item.get("photographer_url")),
            alt=alt.strip()[:500] if isinstance(alt, str) else "",
            width=_positive(item.get("width")),
            height=_positive(item.get("height")),
        )


PROVIDERS: dict[str, Callable[[], ImageProvider]] = {
    "pexels": PexelsProvider.from_settings,
}


def get_provider(name: str) -> ImageProvider:
    factory = PROVIDERS.get(name)
    if factory is None:
        raise ProviderNotConfigured(
            f"There is no image provider called {name!r}; IMAGE_PROVIDERS may name {sorted(PROVIDERS)}"
        )
    return factory()


def configured_providers() -> list[ImageProvider]:
    """The providers in IMAGE_PROVIDERS that can be asked, in that order."""
    providers = []
    for name in dict.fromkeys(settings.IMAGE_PROVIDERS):
        try:
            provider = get_provider(name)
        except ProviderNotConfigured as error:
            logger.error("%s", error)
            continue
        if provider.is_configured():
            providers.append(provider)
    return providers


def provider_label(name: str) -> str:
    """The provider's name as the credit line gives it ("Pexels")."""
    factory = PROVIDERS.get(name)
    return factory().label if factory else name


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
