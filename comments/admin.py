"""The moderation desk in the Django admin: the comment queue, commenters, rules, reports and the log.

Moderators (the group) can use all of it without being superusers. Every decision goes through the
services, so it lands in the moderation log with who made it and why; the log itself is read-only.
The admin's front page says how much is waiting for them.
"""

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME, ActionForm
from django.db.models import Count, Q, QuerySet, Sum
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from newsreader.sanitize import html_to_text
from stories.models import Story

from . import services
from .errors import CommentError
from .models import MODERATOR_REASONS, Comment, Commenter, ModerationLog, ModerationRule, ReasonCode, Report

Status = Comment.Status
REASON_CHOICES = [("", "— reason (for reject / remove) —")] + [(code.value, code.label) for code in MODERATOR_REASONS]
# The queue's story column shows this much of a title (the whole title is its tooltip), so the
# queue fits a laptop screen without scrolling sideways.
STORY_TITLE_LENGTH = 40


def _shortened(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def _excerpt(comment: Comment, length: int = 140) -> str:
    if comment.status == Status.DELETED:
        return "[deleted]"
    return _shortened(html_to_text(comment.body_html), length)


def _rendered(comment: Comment | None, *, heading: str = "") -> str:
    """The comment as readers see it (its stored, sanitised HTML), with who wrote it and when."""
    return render_to_string("admin/comments/_rendered_comment.html", {"comment": comment, "heading": heading})


class QueueFilter(admin.SimpleListFilter):
    """The moderation queues; the list opens on what is waiting for a decision."""

    title = "queue"
    parameter_name = "queue"
    default = "pending"
    queues = {
        "pending": Q(status=Status.PENDING),
        "reported": Q(open_report_count__gt=0),
        "rejected": Q(status=Status.REJECTED),
        "removed": Q(status__in=[Status.REMOVED, Status.DELETED]),
        "published": Q(status=Status.VISIBLE),
        "picks": Q(is_picked=True),
        "all": Q(),
    }

    def lookups(self, request, model_admin):
        return [
            ("pending", "Awaiting moderation"),
            ("reported", "Reported"),
            ("rejected", "Rejected"),
            ("removed", "Removed or deleted"),
            ("published", "Published"),
            ("picks", "Editors' picks"),
            ("all", "All"),
        ]

    def queryset(self, request, queryset):
        return queryset.filter(self.queues.get(self.value() or self.default, Q()))

    def choices(self, changelist):
        current = self.value() or self.default
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


class ReasonFilter(admin.SimpleListFilter):
    """The reasons comments are where they are, listing only those that occur."""

    title = "reason"
    parameter_name = "reason"

    def lookups(self, request, model_admin):
        used = set(Comment.objects.exclude(reason_code="").values_list("reason_code", flat=True).distinct())
        return [(code, label) for code, label in ReasonCode.choices if code in used]

    def queryset(self, request, queryset):
        return queryset.filter(reason_code=self.value()) if self.value() else queryset


class ChosenObjectFilter(admin.SimpleListFilter):
    """A filter set by following a link (a story, an author); it shows only what is chosen, so it
    stays usable with thousands of stories and readers."""

    field = ""

    def lookups(self, request, model_admin):
        value = self.value()
        if not value or not value.isdigit():
            return []
        return [(value, self.describe(int(value)))]

    def describe(self, pk: int) -> str:
        raise NotImplementedError

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(**{self.field: int(value)})
        return queryset


class StoryFilter(ChosenObjectFilter):
    title = "story"
    parameter_name = "story"
    field = "story_id"

    def describe(self, pk: int) -> str:
        story = Story.objects.filter(pk=pk).only("title").first()
        return story.title if story else f"Story {pk}"


class AuthorFilter(ChosenObjectFilter):
    title = "author"
    parameter_name = "author"
    field = "author_id"

    def describe(self, pk: int) -> str:
        commenter = Commenter.objects.select_related("user").filter(pk=pk).first()
        return commenter.user.username if commenter else f"Reader {pk}"


class SubjectFilter(AuthorFilter):
    title = "commenter"
    parameter_name = "subject"
    field = "subject_id"


class CommentActionForm(ActionForm):
    reason_code = forms.ChoiceField(label="Reason", choices=REASON_CHOICES, required=False)


class ReportInline(admin.TabularInline):
    model = Report
    extra = 0
    can_delete = False
    fields = ["reason", "detail", "created_at", "resolution", "resolved_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class CommentLogInline(admin.TabularInline):
    model = ModerationLog
    fk_name = "comment"
    extra = 0
    can_delete = False
    verbose_name_plural = "moderation log"
    fields = ["created_at", "action", "decided_by", "reason_code", "reason"]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("moderator", "reporter")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="by")
    def decided_by(self, entry: ModerationLog) -> str:
        return entry.decided_by


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    """The moderation queue."""

    change_form_template = "admin/comments/comment/change_form.html"
    action_form = CommentActionForm
    actions = ["approve", "reject", "mark_spam", "remove", "pick", "unpick"]
    list_display = ["excerpt", "author_link", "story_link", "status", "reason", "reports", "posted"]
    list_filter = [
        QueueFilter,
        ReasonFilter,
        ("story__section", admin.RelatedOnlyFieldListFilter),
        StoryFilter,
        AuthorFilter,
    ]
    list_select_related = ["author", "story"]
    search_fields = ["body_source", "author__username", "story__title", "author_ip_hash"]
    search_help_text = "Search the text, the author's name, the story's title or an address fingerprint."
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    list_per_page = 50
    inlines = [ReportInline, CommentLogInline]
    fieldsets = [
        (None, {"fields": ["as_readers_see_it", "in_reply_to"]}),
        ("Where and who", {"fields": ["story_link", "author_link", "address_fingerprint", "created_at", "edited_at"]}),
        ("Moderation", {"fields": ["status", "reason_code", "moderation_note", "moderated_at", "open_report_count"]}),
        ("Readers and editors", {"fields": ["recommendation_count", "is_picked", "picked_at"]}),
        ("Text as written", {"fields": ["body_source"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("parent__author")

    def get_readonly_fields(self, request, obj=None):
        return [
            "as_readers_see_it",
            "in_reply_to",
            "story_link",
            "author_link",
            "address_fingerprint",
            "created_at",
            "edited_at",
            "status",
            "reason_code",
            "moderation_note",
            "moderated_at",
            "open_report_count",
            "recommendation_count",
            "is_picked",
            "picked_at",
            "body_source",
        ]

    def has_add_permission(self, request):
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """Nothing on a comment's page is edited: decisions are the actions, offered under the comment."""
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "moderation_actions": [(name, getattr(self, name).short_description) for name in self.actions],
            "reason_choices": REASON_CHOICES,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    # --- columns and fields ------------------------------------------------------------------

    @admin.display(description="comment")
    def excerpt(self, comment: Comment) -> str:
        return _excerpt(comment, 100)

    @admin.display(description="author", ordering="author__username")
    def author_link(self, comment: Comment) -> str:
        if comment.author_id is None:
            return "[deleted]"
        return format_html(
            '<a href="?{}">{}</a> · <a href="{}" title="Their record and history">record</a>',
            urlencode({"author": comment.author_id, "queue": "all"}),
            comment.author.username,
            reverse("admin:comments_commenter_change", args=[comment.author_id]),
        )

    @admin.display(description="story", ordering="story__title")
    def story_link(self, comment: Comment) -> str:
        return format_html(
            '<a href="?{}" title="{}">{}</a> · <a href="{}">page</a>',
            urlencode({"story": comment.story_id, "queue": "all"}),
            comment.story.title,
            _shortened(comment.story.title, STORY_TITLE_LENGTH),
            comment.story.get_absolute_url(),
        )

    @admin.display(description="why")
    def reason(self, comment: Comment) -> str:
        if not comment.reason_code:
            return ""
        label = comment.get_reason_code_display()
        return f"{label}: {comment.moderation_note}" if comment.moderation_note else label

    @admin.display(description="reports", ordering="open_report_count")
    def reports(self, comment: Comment) -> int:
        return comment.open_report_count

    @admin.display(description="posted", ordering="created_at")
    def posted(self, comment: Comment) -> str:
        return f"{timezone.localtime(comment.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="as readers see it")
    def as_readers_see_it(self, comment: Comment) -> str:
        return _rendered(comment)

    @admin.display(description="in reply to")
    def in_reply_to(self, comment: Comment) -> str:
        if comment.parent_id is None:
            return "(a top-level comment)"
        return _rendered(comment.parent)

    @admin.display(description="address fingerprint")
    def address_fingerprint(self, comment: Comment) -> str:
        if not comment.author_ip_hash:
            return "—"
        url = (
            reverse("admin:comments_comment_changelist")
            + "?"
            + urlencode({"q": comment.author_ip_hash, "queue": "all"})
        )
        return format_html('<a href="{}" title="Comments from the same address">{}</a>', url, comment.author_ip_hash)

    # --- actions -----------------------------------------------------------------------------

    @admin.action(description="Approve selected comments (publish them)", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(
            request,
            queryset,
            "approve",
            "approved",
            lambda c: services.comment_approve(comment=c, moderator=request.user),
        )

    @admin.action(description="Reject selected comments (choose a reason)", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet):
        reason_code = request.POST.get("reason_code", "")
        return self._decide(
            request,
            queryset,
            "reject",
            "rejected",
            lambda c: services.comment_reject(comment=c, moderator=request.user, reason_code=reason_code),
            reason_code=reason_code,
        )

    @admin.action(description="Mark selected comments as spam", permissions=["change"])
    def mark_spam(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(
            request,
            queryset,
            "mark_spam",
            "marked as spam",
            lambda c: services.comment_mark_spam(comment=c, moderator=request.user),
        )

    @admin.action(description="Remove selected comments (choose a reason)", permissions=["change"])
    def remove(self, request: HttpRequest, queryset: QuerySet):
        reason_code = request.POST.get("reason_code", "")
        return self._decide(
            request,
            queryset,
            "remove",
            "removed",
            lambda c: services.comment_remove(comment=c, moderator=request.user, reason_code=reason_code),
            reason_code=reason_code,
        )

    @admin.action(description="Make selected comments editors' picks", permissions=["change"])
    def pick(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(
            request,
            queryset,
            "pick",
            "made editors' picks",
            lambda c: services.comment_pick(comment=c, moderator=request.user, picked=True),
        )

    @admin.action(description="Remove selected comments from editors' picks", permissions=["change"])
    def unpick(self, request: HttpRequest, queryset: QuerySet):
        return self._decide(
            request,
            queryset,
            "unpick",
            "removed from editors' picks",
            lambda c: services.comment_pick(comment=c, moderator=request.user, picked=False),
        )

    def _decide(self, request, queryset, action: str, done: str, decide, *, reason_code: str | None = None):
        """Ask for confirmation, then apply `decide` to each comment and say what happened."""
        if reason_code is not None and reason_code not in {code.value for code in MODERATOR_REASONS}:
            self.message_user(
                request, "Choose a reason in the “Reason” list next to the action, then try again.", messages.ERROR
            )
            return None
        comments = list(queryset.select_related("author", "story"))
        if request.POST.get("confirmed") != "yes":
            return _confirmation(request, self, action, comments, reason_code=reason_code)
        changed, refused = 0, []
        for comment in comments:
            try:
                decide(comment)
                changed += 1
            except CommentError as error:
                refused.append(f"#{comment.pk}: {error.message}")
        self.message_user(request, f"{changed} comment{'s' if changed != 1 else ''} {done}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed — " + " ".join(refused), messages.WARNING)
        return None


@admin.register(Commenter)
class CommenterAdmin(admin.ModelAdmin):
    """A reader's standing in the comments, their history, and the actions on them."""

    class ActionForm(ActionForm):
        until = forms.DateField(label="Suspend until", required=False, widget=forms.DateInput(attrs={"type": "date"}))
        reason = forms.CharField(label="Reason", required=False, max_length=500)

    action_form = ActionForm
    actions = ["suspend", "ban", "ban_and_reject", "premoderate", "stop_premoderating", "reinstate"]
    list_display = ["user", "standing", "always_premoderate", "published", "held_or_rejected", "joined"]
    list_filter = ["is_banned", "always_premoderate", ("suspended_until", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = [
        "user",
        "standing",
        "suspended_until",
        "is_banned",
        "always_premoderate",
        "moderation_note",
        "notify_replies",
        "history",
    ]
    readonly_fields = ["user", "standing", "notify_replies", "history"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                published_count=Count("user__comments", filter=Q(user__comments__status=Status.VISIBLE)),
                held_count=Count(
                    "user__comments", filter=Q(user__comments__status__in=[Status.PENDING, Status.REJECTED])
                ),
            )
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="standing")
    def standing(self, commenter: Commenter) -> str:
        if commenter.is_banned:
            return "Banned"
        if commenter.is_suspended():
            return f"Suspended until {timezone.localtime(commenter.suspended_until):%Y-%m-%d %H:%M}"
        return "In good standing"

    @admin.display(description="published", ordering="published_count")
    def published(self, commenter: Commenter) -> int:
        return commenter.published_count

    @admin.display(description="held or rejected", ordering="held_count")
    def held_or_rejected(self, commenter: Commenter) -> int:
        return commenter.held_count

    @admin.display(description="joined", ordering="user__date_joined")
    def joined(self, commenter: Commenter):
        return commenter.user.date_joined

    @admin.display(description="history")
    def history(self, commenter: Commenter) -> str:
        comments = Comment.objects.filter(author_id=commenter.pk).select_related("story").order_by("-created_at")[:50]
        log = ModerationLog.objects.filter(subject_id=commenter.pk).select_related("moderator", "reporter", "comment")
        log = log[:50]
        return render_to_string(
            "admin/comments/commenter_history.html",
            {
                "commenter": commenter,
                "comments": [(comment, _excerpt(comment, 100)) for comment in comments],
                "log": log,
                "all_comments_url": reverse("admin:comments_comment_changelist")
                + "?"
                + urlencode({"author": commenter.pk, "queue": "all"}),
                "all_log_url": reverse("admin:comments_moderationlog_changelist")
                + "?"
                + urlencode({"subject": commenter.pk}),
            },
        )

    def save_model(self, request, obj: Commenter, form, change):
        """Changes made on the form go through the services, so they are logged like the actions."""
        reason = form.cleaned_data.get("moderation_note", "")
        before = Commenter.objects.get(pk=obj.pk)
        lifted = (before.is_banned and not obj.is_banned) or (before.suspended_until and not obj.suspended_until)
        if obj.is_banned and not before.is_banned:
            services.commenter_ban(user=obj.user, moderator=request.user, reason=reason)
        elif lifted:
            services.commenter_reinstate(user=obj.user, moderator=request.user, reason=reason)
        if obj.suspended_until and (lifted or obj.suspended_until != before.suspended_until):
            try:
                services.commenter_suspend(
                    user=obj.user, moderator=request.user, until=obj.suspended_until, reason=reason
                )
            except CommentError as error:
                self.message_user(request, error.message, messages.ERROR)
        if obj.always_premoderate != before.always_premoderate:
            services.commenter_set_premoderation(
                user=obj.user, moderator=request.user, enabled=obj.always_premoderate, reason=reason
            )
        Commenter.objects.filter(pk=obj.pk).update(moderation_note=reason)

    # --- actions -----------------------------------------------------------------------------

    def _each(self, request, queryset, done: str, act) -> None:
        changed, refused = 0, []
        for commenter in queryset.select_related("user"):
            try:
                act(commenter)
                changed += 1
            except CommentError as error:
                refused.append(f"{commenter.user.username}: {error.message}")
        self.message_user(request, f"{changed} commenter{'s' if changed != 1 else ''} {done}.", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not changed — " + " ".join(refused), messages.WARNING)

    @admin.action(description="Suspend selected commenters until the date given", permissions=["change"])
    def suspend(self, request, queryset):
        until_text = request.POST.get("until", "")
        try:
            until_date = forms.DateField().clean(until_text)
        except forms.ValidationError:
            self.message_user(
                request, "Give the date the suspension ends in “Suspend until”, then try again.", messages.ERROR
            )
            return None
        if request.POST.get("confirmed") != "yes":
            return _confirmation(request, self, "suspend", list(queryset.select_related("user")), until=until_date)
        until = timezone.make_aware(timezone.datetime.combine(until_date, timezone.datetime.min.time()))
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            f"suspended until {until_date:%Y-%m-%d}",
            lambda c: services.commenter_suspend(user=c.user, moderator=request.user, until=until, reason=reason),
        )
        return None

    @admin.action(description="Ban selected commenters", permissions=["change"])
    def ban(self, request, queryset):
        return self._ban(request, queryset, reject_comments=False)

    @admin.action(description="Ban selected commenters and reject all their comments", permissions=["change"])
    def ban_and_reject(self, request, queryset):
        return self._ban(request, queryset, reject_comments=True)

    def _ban(self, request, queryset, *, reject_comments: bool):
        action = "ban_and_reject" if reject_comments else "ban"
        if request.POST.get("confirmed") != "yes":
            return _confirmation(
                request, self, action, list(queryset.select_related("user")), reject_comments=reject_comments
            )
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            "banned",
            lambda c: services.commenter_ban(
                user=c.user, moderator=request.user, reason=reason, reject_comments=reject_comments
            ),
        )
        return None

    @admin.action(description="Always pre-moderate selected commenters", permissions=["change"])
    def premoderate(self, request, queryset):
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            "now always pre-moderated",
            lambda c: services.commenter_set_premoderation(
                user=c.user, moderator=request.user, enabled=True, reason=reason
            ),
        )

    @admin.action(description="Stop pre-moderating selected commenters", permissions=["change"])
    def stop_premoderating(self, request, queryset):
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            "no longer pre-moderated",
            lambda c: services.commenter_set_premoderation(
                user=c.user, moderator=request.user, enabled=False, reason=reason
            ),
        )

    @admin.action(description="Lift ban or suspension of selected commenters", permissions=["change"])
    def reinstate(self, request, queryset):
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            "reinstated",
            lambda c: services.commenter_reinstate(user=c.user, moderator=request.user, reason=reason),
        )


@admin.register(ModerationRule)
class ModerationRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "kind",
        "is_active",
        "limit",
        "window_seconds",
        "new_accounts_only",
        "source",
        "section",
        "updated_at",
    ]
    list_editable = ["is_active"]
    list_filter = ["kind", "is_active"]
    list_select_related = ["source", "section"]
    search_fields = ["name", "words", "message"]
    autocomplete_fields = ["source", "section"]
    fields = [
        "name",
        "kind",
        "is_active",
        "words",
        "limit",
        "window_seconds",
        "new_accounts_only",
        "source",
        "section",
        "message",
    ]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["comment_excerpt", "reason", "detail", "created_at", "resolution"]
    list_filter = ["reason", "resolution", "created_at"]
    list_select_related = ["comment"]
    search_fields = ["detail", "comment__body_source"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="comment")
    def comment_excerpt(self, report: Report) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:comments_comment_change", args=[report.comment_id]),
            _excerpt(report.comment, 100),
        )


class DecidedByFilter(admin.SimpleListFilter):
    title = "decided by"
    parameter_name = "by"

    def lookups(self, request, model_admin):
        return [("rule", "A rule (automatic)"), ("moderator", "A moderator"), ("reader", "The reader")]

    def queryset(self, request, queryset):
        people_actions = [ModerationLog.Action.DELETED, ModerationLog.Action.EDITED, ModerationLog.Action.REPORTED]
        if self.value() == "moderator":
            return queryset.filter(moderator__isnull=False)
        if self.value() == "rule":
            return queryset.filter(moderator__isnull=True).exclude(action__in=people_actions)
        if self.value() == "reader":
            return queryset.filter(moderator__isnull=True, action__in=people_actions)
        return queryset


@admin.register(ModerationLog)
class ModerationLogAdmin(admin.ModelAdmin):
    """Every decision, automatic or human. Nobody can add, change or delete an entry."""

    list_display = ["created_at", "action", "decided_by", "subject", "comment_link", "story", "reason_code", "reason"]
    list_filter = ["action", DecidedByFilter, "reason_code", "rule_name", "created_at", SubjectFilter]
    list_select_related = ["moderator", "reporter", "subject", "story", "comment"]
    search_fields = ["reason", "rule_name", "subject__username", "moderator__username", "story__title"]
    date_hierarchy = "created_at"
    list_per_page = 100

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="by")
    def decided_by(self, entry: ModerationLog) -> str:
        return entry.decided_by

    @admin.display(description="comment")
    def comment_link(self, entry: ModerationLog) -> str:
        if entry.comment_id is None:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:comments_comment_change", args=[entry.comment_id]), entry.comment_id
        )


def _confirmation(request: HttpRequest, model_admin: admin.ModelAdmin, action: str, objects: list, **details):
    """The page that asks a moderator to confirm a bulk action, listing what it will apply to."""
    reason_code = details.get("reason_code")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Are you sure?",
        "opts": model_admin.model._meta,
        "action": action,
        "action_description": getattr(model_admin, action).short_description,
        "objects": [(obj, _excerpt(obj) if isinstance(obj, Comment) else str(obj)) for obj in objects],
        "reason_label": dict(ReasonCode.choices).get(reason_code, "") if reason_code else "",
        "details": details,
        "post_fields": [
            (name, value)
            for name, value in request.POST.items()
            if name not in (ACTION_CHECKBOX_NAME, "csrfmiddlewaretoken", "index", "confirmed")
        ],
        "selected": [obj.pk for obj in objects],
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/comments/confirm_action.html", context)


def moderation_counts(request: HttpRequest) -> dict:
    """What waits for moderators, for the admin's front page: one query, and none for those who cannot moderate."""
    if not request.user.has_perm("comments.view_comment"):
        return {}
    counts = Comment.objects.aggregate(
        pending=Count("pk", filter=Q(status=Status.PENDING)),
        reported=Count("pk", filter=Q(open_report_count__gt=0)),
        open_reports=Sum("open_report_count", default=0),
    )
    queue = reverse("admin:comments_comment_changelist")
    return {
        "moderation_counts": {
            **counts,
            "pending_url": f"{queue}?{urlencode({'queue': 'pending'})}",
            "reported_url": f"{queue}?{urlencode({'queue': 'reported'})}",
        }
    }


def _index_with_moderation_counts(index):
    """The admin's index view, given `moderation_counts` (only that page pays for the query)."""

    @functools.wraps(index)
    def wrapped(request, extra_context=None):
        return index(request, extra_context={**moderation_counts(request), **(extra_context or {})})

    return wrapped


admin.site.index = _index_with_moderation_counts(admin.site.index)
