"""Error reporting to Sentry (or any server speaking its protocol), on when SENTRY_DSN is set.

Exceptions in views and Celery tasks, and errors logged, are sent with the release they happened in.
What readers wrote and what identifies them stays here: request bodies (comment text, passwords), cookies,
Authorization headers, query strings, local variables and user details but the id are left out, and email
addresses are masked wherever they appear.
"""

import re
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FILTERED = "[Filtered]"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Keys whose values are removed wherever they appear in an event.
_SECRET_KEY = re.compile(r"pass|secret|token|authori[sz]ation|cookie|session|csrf|api_?key|e-?mail|body", re.I)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrftoken"}


def init_sentry(*, dsn: str, release: str | None = None) -> None:
    """Start reporting to `dsn`, with `release` (default: the git commit, else the package version)."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        release=release or default_release(),
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
    )


def default_release() -> str | None:
    return git_commit(PROJECT) or package_version()


def git_commit(repository: Path) -> str | None:
    """The commit checked out in `repository`, read from its files (no git needed), or None."""
    git = repository / ".git"
    try:
        if git.is_file():  # a worktree: ".git" names the real directory
            git = (repository / git.read_text().removeprefix("gitdir:").strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.removeprefix("ref:").strip()
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").is_file() else git
        for folder in (git, common):
            if (folder / ref).is_file():
                return (folder / ref).read_text().strip() or None
        for line in (common / "packed-refs").read_text().splitlines():
            commit, _, name = line.partition(" ")
            if name == ref:
                return commit
    except OSError:
        return None
    return None


def package_version() -> str | None:
    try:
        with open(PROJECT / "pyproject.toml", "rb") as file:
            return f"newsreader@{tomllib.load(file)['project']['version']}"
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None


def scrub_event(event: dict, hint: dict | None = None) -> dict:
    """Remove what could identify a reader or repeat what they wrote, before an event is sent."""
    request = event.get("request")
    if isinstance(request, dict):
        for name in ("data", "cookies", "env", "query_string"):
            request.pop(name, None)
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {name: value for name, value in headers.items() if name.lower() not in _SECRET_HEADERS}
    user = event.get("user")
    if isinstance(user, dict):
        event["user"] = {"id": user["id"]} if "id" in user else {}
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict) and isinstance(breadcrumbs.get("values"), list):
        breadcrumbs["values"] = [scrub_breadcrumb(crumb) for crumb in breadcrumbs["values"] if isinstance(crumb, dict)]
    return _scrubbed(event)


def scrub_breadcrumb(crumb: dict, hint: dict | None = None) -> dict:
    """Keep a query's SQL but not its parameters (comment text, addresses), and a Redis command's name
    but not its keys (a session's key is as good as its cookie)."""
    if crumb.get("category") in ("query", "redis"):
        crumb.pop("data", None)
    if crumb.get("category") == "redis" and isinstance(crumb.get("message"), str):
        crumb["message"] = crumb["message"].split(" ", 1)[0]
    return _scrubbed(crumb)


def _scrubbed(value):
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and _SECRET_KEY.search(key) else _scrubbed(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrubbed(item) for item in value]
    if isinstance(value, str):
        return _EMAIL.sub(FILTERED, value)
    return value
