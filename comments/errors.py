"""What can go wrong when a reader or a moderator acts on a comment, with the message they are shown.

Each error is a `CommentError` and one of the shared kinds of `newsreader.errors`, which gives it the
HTTP status a view answers with, so a refusal is always a clear message and never a server error.
"""

from newsreader import errors


class CommentError(errors.UserError):
    """A refusal the person acting on a comment is told about; `code` is the moderation reason code."""


class InvalidComment(CommentError, errors.InvalidRequest):
    """The text or the request itself is wrong: empty, too long, a reply to a comment that is gone."""


class NotAllowed(CommentError, errors.NotAllowed):
    """This person may not do this: not the author, suspended, banned, unverified, comments closed."""


class CommentRejected(CommentError, errors.InvalidRequest):
    """The rules reject the text (banned words): it is kept for moderators but never published."""


class DuplicateComment(CommentError, errors.Conflict):
    """The same text was posted moments ago."""


class RateLimited(CommentError, errors.TooManyRequests):
    """Too many comments too quickly; `retry_after` says how many seconds until the next one is accepted."""


class AlreadyReported(CommentError, errors.Conflict):
    """The reader reported this comment before."""


class ModerationError(CommentError, errors.Conflict):
    """A moderator's decision that does not apply to this comment or commenter."""
