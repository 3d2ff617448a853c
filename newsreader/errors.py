"""The refusals a reader or a moderator is shown, one hierarchy for every app, and how a view answers with one.

A service raises a `UserError` subclass; the view renders its page or fragment through
`refusal_response`, so the status, the message and the Retry-After header come out the same way
everywhere, and a refusal is never a server error.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class UserError(Exception):
    """Something the person acting may not do or must do differently, in words they can act on.

    `code` names the reason for logs and moderators, `status` is the HTTP status a view answers with,
    and `retry_after`, when not 0, the seconds until trying again can succeed.
    """

    status = 400

    def __init__(self, message: str, *, code: str = "", retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after


class InvalidRequest(UserError):
    """What was sent is wrong or incomplete."""

    status = 422


class NotAllowed(UserError):
    """This person may not do this (here, or at all)."""

    status = 403


class Conflict(UserError):
    """It clashes with what is already there: sent twice, done before."""

    status = 409


class TooManyRequests(UserError):
    """Over a rate limit; `retry_after` says when the next attempt is accepted."""

    status = 429


def refusal_response(
    request: HttpRequest, template_name: str, context: dict, *, error: UserError | None
) -> HttpResponse:
    """`template_name` rendered with the error's status and Retry-After (200 when there is no error)."""
    response = render(request, template_name, context, status=error.status if error else 200)
    if error is not None and error.retry_after:
        response["Retry-After"] = str(error.retry_after)
    return response
