"""What can go wrong when a reader or a moderator acts on a comment, with the message they are shown.

Each error carries the HTTP status a view answers with, so a refusal is always a clear message and
never a server error.
"""


class CommentError(Exception):
    """A refusal the person acting is told about, in words they can act on."""

    status = 400

    def __init__(self, message: str, *, reason_code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason_code = reason_code


class InvalidComment(CommentError):
    """The text or the request itself is wrong: empty, too long, a reply to a comment that is gone."""

    status = 422


class NotAllowed(CommentError):
    """This person may not do this: not the author, suspended, banned, unverified, comments closed."""

    status = 403


class CommentRejected(CommentError):
    """The rules reject the text (banned words): it is kept for moderators but never published."""

    status = 422


class DuplicateComment(CommentError):
    """The same text was posted moments ago."""

    status = 409


class RateLimited(CommentError):
    """Too many comments too quickly; `retry_after` says how many seconds until the next one is accepted."""

    status = 429

    def __init__(self, message: str, *, reason_code: str = "", retry_after: int = 0) -> None:
        super().__init__(message, reason_code=reason_code)
        self.retry_after = retry_after


class AlreadyReported(CommentError):
    status = 409


class ModerationError(CommentError):
    """A moderator's decision that does not apply to this comment or commenter."""

    status = 409
