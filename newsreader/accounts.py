"""The site's django-allauth account adapter and sign-up forms: what Newsreader changes about allauth's defaults.

A reader's username is their public name, shown with every comment; they log in with their email.
"""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SignupForm as AccountSignupForm
from allauth.core import ratelimit
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.forms import SignupForm as SocialAccountSignupForm
from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from comments.markup import strip_invisible_controls
from comments.models import Commenter

from .clientaddr import client_address

PUBLIC_NAME_HELP = "Shown with your comments. Letters, digits and @ . + - _ only; you log in with your email."
PUBLIC_NAME_INVALID = "A public name may contain only letters, digits and the characters @ . + - _"
PUBLIC_NAME_LOOKS_TAKEN = "This public name looks too much like another reader's. Please choose another one."


def clean_public_name(name: str) -> str:
    """The name without the invisible characters (bidi controls, zero-width spaces) that could disguise it."""
    return strip_invisible_controls(name).strip()


def name_looks_taken(name: str, *, by_anyone_but=None) -> bool:
    """Whether another reader's public name looks like this one (Unicode confusable skeletons match)."""
    lookalikes = Commenter.objects.named_like(name)
    if by_anyone_but is not None:
        lookalikes = lookalikes.exclude(user=by_anyone_but)
    return lookalikes.exists()


class AccountAdapter(DefaultAccountAdapter):
    """Keys allauth's rate limits (and its security mails) to the client's address as the site's
    trusted proxies report it, not to the proxy's; speaks of public names, and refuses look-alike ones."""

    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "username_blacklisted": "This public name cannot be used. Please choose another one.",
        "username_taken": "Another reader already has this public name. Please choose another one.",
    }

    def get_client_ip(self, request: HttpRequest) -> str:
        address = client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's IP address.")
        return address

    def pre_authenticate(self, request: HttpRequest, **credentials) -> None:
        """A client over its failed-login limit gets 429 Too Many Requests (templates/429.html), as the other
        account rate limits answer, rather than the form again with a 200."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError as error:
            if error.code == "too_many_login_attempts":
                raise ImmediateHttpResponse(ratelimit.respond_429(request)) from error
            raise

    def clean_username(self, username: str, shallow: bool = False) -> str:
        username = clean_public_name(username)
        try:
            username = super().clean_username(username, shallow=shallow)
        except ValidationError as error:
            if error.code == "invalid":
                raise ValidationError(PUBLIC_NAME_INVALID, code="invalid") from error
            raise
        # allauth skips database lookups when shallow, while it makes up a name for a social sign-up.
        if not shallow and name_looks_taken(username):
            raise ValidationError(PUBLIC_NAME_LOOKS_TAKEN, code="lookalike_name")
        return username


def _label_public_name(form: forms.Form) -> None:
    field = form.fields.get("username")
    if field is not None:
        field.label = "Public name"
        field.help_text = PUBLIC_NAME_HELP
        field.widget.attrs["placeholder"] = "Public name"
        field.widget.attrs["autocomplete"] = "nickname"


class SignupForm(AccountSignupForm):
    """allauth's sign-up form, asking for a "Public name" where it says "Username"."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _label_public_name(self)


class SocialSignupForm(SocialAccountSignupForm):
    """The same, for readers signing up through GitHub or Google."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _label_public_name(self)
