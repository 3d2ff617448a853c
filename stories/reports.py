"""Readers' reports that a story's section or one of its tags is wrong, and moderators' decisions on them.

A signed-in reader with a verified address may send one report per story, and at most
LABEL_REPORTS_PER_HOUR an hour. Reports wait in the admin queue, most-reported stories first; confirming
one corrects the story's label through `record_corrections`, so it becomes a `LabelCorrection` like any
moderator's edit (and counts towards the labeller's next refit). Dismissing one changes nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from allauth.account.models import EmailAddress
from django import forms
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from newsreader import errors
from newsreader.ratelimits import count_in_window

from .labelling.service import label_snapshot, record_corrections, tags_named
from .models import LabelCorrection, LabelReport, Section, Story, Tag

RATE_WINDOW_SECONDS = 3600


class LabelReportError(errors.UserError):
    """A report the reader cannot send; its kind from `newsreader.errors` gives the HTTP status."""


class InvalidReport(LabelReportError, errors.InvalidRequest):
    pass


class NotAllowed(LabelReportError, errors.NotAllowed):
    pass


class AlreadyReported(LabelReportError, errors.Conflict):
    pass


class TooManyReports(LabelReportError, errors.TooManyRequests):
    pass


class LabelReportForm(forms.Form):
    """What a reader says is wrong: the section (with a better one, if they know it) or one of the tags."""

    kind = forms.ChoiceField(choices=LabelReport.Kind.choices, widget=forms.RadioSelect)
    suggested_section = forms.ModelChoiceField(queryset=Section.objects.all(), required=False)
    tag = forms.ModelChoiceField(queryset=Tag.objects.none(), required=False)
    suggestion = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, story: Story, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.story = story
        self.fields["tag"].queryset = story.tags.all()

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("kind") == LabelReport.Kind.TAG and not cleaned.get("tag"):
            raise forms.ValidationError("Choose the tag that is wrong.")
        section = cleaned.get("suggested_section")
        if cleaned.get("kind") == LabelReport.Kind.SECTION and section and section.pk == self.story.section_id:
            raise forms.ValidationError(f"{section.name} is the story's section already; choose another one.")
        return cleaned

    def first_error(self) -> str:
        for field_errors in self.errors.values():
            return str(field_errors[0])
        return "Please check the report."


def report_form_context(
    *, story: Story, reader, sections: list[Section] | None = None, reported: frozenset[int] | None = None
) -> dict:
    """What the story page's report form needs for a signed-in reader: two queries, whatever the story, or
    none when the caller knows the sections and the stories the reader `reported`."""
    return {
        "sections": sections if sections is not None else list(Section.objects.all()),
        "already_reported": (
            story.pk in reported
            if reported is not None
            else LabelReport.objects.filter(story=story, reporter=reader).exists()
        ),
    }


def count_attempt(reader) -> None:
    """Count an attempt to report in the reader's current hour (valid or not); refuse past
    LABEL_REPORTS_PER_HOUR with `TooManyReports`."""
    attempts = count_in_window(f"label-reports:{reader.pk}", window_seconds=RATE_WINDOW_SECONDS)
    limit = settings.LABEL_REPORTS_PER_HOUR
    if attempts.over(limit):
        raise TooManyReports(
            f"You have sent {limit} label reports this hour, the most we take from one reader. "
            f"Please try again in {max(1, round(attempts.resets_in / 60))} minutes.",
            retry_after=attempts.resets_in,
        )


def report_label(
    *,
    story: Story,
    reader,
    kind: str,
    tag: Tag | None = None,
    suggested_section: Section | None = None,
    suggestion: str = "",
) -> LabelReport:
    """A reader reports a wrong section or tag. Raises a `LabelReportError` saying why not."""
    count_attempt(reader)
    if kind not in LabelReport.Kind.values:
        raise InvalidReport("Choose what is wrong: the section or a tag.")
    if not EmailAddress.objects.filter(user=reader, verified=True).exists():
        raise NotAllowed("Please verify your email address before reporting labels.")
    if kind == LabelReport.Kind.TAG and (tag is None or not story.tags.filter(pk=tag.pk).exists()):
        raise InvalidReport("Choose one of the story's tags.")
    try:
        with transaction.atomic():
            return LabelReport.objects.create(
                story=story,
                reporter=reader,
                kind=kind,
                tag=tag if kind == LabelReport.Kind.TAG else None,
                suggested_section=suggested_section if kind == LabelReport.Kind.SECTION else None,
                suggestion=" ".join(suggestion.split())[:200],
            )
    except IntegrityError:
        raise AlreadyReported(
            "You have already reported this story's labels; thank you. A moderator will look at it."
        ) from None


@dataclass
class ConfirmOutcome:
    confirmed: int = 0
    corrections: list[LabelCorrection] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def confirm_label_reports(*, reports: Iterable[LabelReport], moderator) -> ConfirmOutcome:
    """Apply what each open report says (the suggested section; the wrong tag removed and the suggested one
    added) as the moderator's correction. Other open reports of the same label are confirmed with it."""
    outcome = ConfirmOutcome()
    for report in reports:
        with transaction.atomic():
            story = Story.objects.select_for_update().get(pk=report.story_id)
            # Confirming an earlier report may have closed this one with it.
            if not LabelReport.objects.open().filter(pk=report.pk).exists():
                continue
            previous = label_snapshot(story)
            if report.kind == LabelReport.Kind.SECTION:
                if report.suggested_section_id is None:
                    outcome.skipped.append(f"“{story.title}”: no section suggested; correct it on the story's page")
                    continue
                story.section_id = report.suggested_section_id
                story.save()
                same_label = {"kind": LabelReport.Kind.SECTION}
            else:
                if report.tag_id is None and not report.suggestion:
                    outcome.skipped.append(f"“{story.title}”: the reported tag no longer exists")
                    continue
                if report.tag_id:
                    story.tags.remove(report.tag_id)
                if report.suggestion:
                    story.tags.add(*tags_named([report.suggestion]))
                same_label = {"kind": LabelReport.Kind.TAG, "tag_id": report.tag_id}
            corrections = record_corrections(story=story, previous=previous, moderator=moderator)
            field_name = (
                LabelCorrection.Field.SECTION if report.kind == LabelReport.Kind.SECTION else LabelCorrection.Field.TAGS
            )
            correction = next((c for c in corrections if c.field == field_name), None)
            if correction is None:
                correction = LabelCorrection.objects.active().filter(story=story, field=field_name).first()
            outcome.confirmed += (
                LabelReport.objects.open()
                .filter(story=story, **same_label)
                .update(
                    status=LabelReport.Status.CONFIRMED,
                    handled_by=moderator,
                    handled_at=timezone.now(),
                    correction=correction,
                )
            )
            outcome.corrections += corrections
    return outcome


def dismiss_label_reports(*, reports: Iterable[LabelReport], moderator) -> int:
    """Close open reports without changing the story's labels."""
    ids = [report.pk for report in reports if report.status == LabelReport.Status.OPEN]
    return (
        LabelReport.objects.open()
        .filter(pk__in=ids)
        .update(status=LabelReport.Status.DISMISSED, handled_by=moderator, handled_at=timezone.now())
    )
