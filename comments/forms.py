"""Forms readers fill in: a comment or reply, an edit, a report, deleting their account."""

import uuid

from django import forms
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from .models import Report


class CommentForm(forms.Form):
    """A new comment or reply. The hidden key makes a double submit post once."""

    body = forms.CharField(
        label="Your comment",
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Write something before posting."},
    )
    idempotency_key = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body"].widget.attrs["maxlength"] = settings.COMMENTS_MAX_LENGTH
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4())

    def fresh(self) -> "CommentForm":
        """The same text with a new key: after a refusal, the next submit is a new attempt."""
        return type(self)(initial={"body": self.data.get("body", ""), "idempotency_key": uuid.uuid4()})


class EditForm(forms.Form):
    body = forms.CharField(
        label="Your comment",
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": "Write something, or delete the comment instead."},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["body"].widget.attrs["maxlength"] = settings.COMMENTS_MAX_LENGTH


class ReportForm(forms.Form):
    reason = forms.ChoiceField(
        label="What is wrong with this comment?",
        choices=Report.Reason.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose why you are reporting this comment."},
    )
    detail = forms.CharField(label="Anything moderators should know (optional)", required=False, max_length=500)


class NotificationsForm(forms.Form):
    notify_replies = forms.BooleanField(label="Email me when someone replies to my comments", required=False)


class DeleteAccountForm(forms.Form):
    """Deleting an account asks for the password, or the public name for accounts without one."""

    confirmation = forms.CharField(strip=False, widget=forms.PasswordInput)

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if user.has_usable_password():
            self.fields["confirmation"].label = "Your password"
        else:
            self.fields["confirmation"].label = f"Type your public name ({user.username}) to confirm"
            self.fields["confirmation"].widget = forms.TextInput()

    def clean_confirmation(self) -> str:
        value = self.cleaned_data["confirmation"]
        if self.user.has_usable_password():
            if not self.user.check_password(value):
                raise forms.ValidationError("That is not your password.")
        elif value.strip() != self.user.username:
            raise forms.ValidationError("That is not your public name.")
        return value
