"""Forms of the follows app: what to follow, and the digest settings."""

from zoneinfo import available_timezones

from django import forms

from .models import FOLLOWABLE, DigestSettings


class FollowForm(forms.Form):
    kind = forms.ChoiceField(choices=[(kind, kind) for kind in FOLLOWABLE])
    slug = forms.SlugField(max_length=200)


class DigestSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(label="Time zone", choices=[])
    hour = forms.TypedChoiceField(label="At", coerce=int, choices=[(hour, f"{hour:02d}:00") for hour in range(24)])

    class Meta:
        model = DigestSettings
        fields = ["frequency", "hour", "time_zone"]
        labels = {"frequency": "Send me a digest"}
        widgets = {"frequency": forms.RadioSelect}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(name, name) for name in sorted(available_timezones())]
