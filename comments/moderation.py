"""The moderation pipeline: every new or edited comment passes through it, and it says why it decided.

Three stages, in order:
1. the gate: may this reader comment here at all (not banned or suspended, verified email, story open:
   not closed by a moderator, a site-wide rule, or a rule closing its comments N days after publication) —
   `refusal`, which the thread's form and reports ask too;
2. the pace: rate limits and the same text posted again (new comments only; needs the author's lock);
3. the content: banned words reject; site, story or commenter pre-moderation, suspect words, too many
   links and a new commenter's first comments hold for review; anything else is approved. Moderators,
   staff and readers whose comments moderators have approved often enough are not new commenters.

The rules are rows of `ModerationRule`, edited in the admin and cached for a minute.
"""

import enum
import functools
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from newsreader.database import planned_once
from stories.models import Story

from .markup import count_links, normalise
from .models import Comment, Commenter, ModerationLog, ModerationRule, ReasonCode

RULES_CACHE_KEY = "comments:moderation-rules:v2"
RULES_CACHE_SECONDS = 60
MODERATORS_GROUP = "Moderators"

Kind = ModerationRule.Kind


class Verdict(enum.Enum):
    APPROVE = "approve"
    HOLD = "hold"
    REJECT = "reject"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Rule:
    """A moderation rule as the pipeline reads it, safe to cache."""

    id: int
    name: str
    kind: str
    words: tuple[str, ...]
    limit: int | None
    window_seconds: int | None
    new_accounts_only: bool
    message: str
    source_id: int | None = None
    section_id: int | None = None

    @classmethod
    def from_model(cls, rule: ModerationRule) -> "Rule":
        return cls(
            id=rule.pk,
            name=rule.name,
            kind=rule.kind,
            words=tuple(rule.word_list()),
            limit=rule.limit,
            window_seconds=rule.window_seconds,
            new_accounts_only=rule.new_accounts_only,
            message=rule.message,
            source_id=rule.source_id,
            section_id=rule.section_id,
        )

    def first_match(self, normalised_text: str) -> str | None:
        """The first listed word or phrase the text contains, if any."""
        found = _word_pattern(self.words).search(normalised_text)
        return found.group(0) if found else None


@dataclass(frozen=True)
class Decision:
    """What the pipeline decided, which rule decided it, why (for moderators) and what the author is told."""

    verdict: Verdict
    reason_code: str
    reason: str
    message: str = ""
    rule: Rule | None = None
    retry_after: int = 0


@dataclass(frozen=True)
class Submission:
    """A comment being posted or edited, as the pipeline sees it."""

    author_id: int
    author_joined: datetime
    commenter: Commenter
    email_verified: bool
    story: Story
    text: str
    html: str
    fingerprint: str
    # The author's published comments counted up to `new_commenter_limit(rules)`, when the caller has
    # counted them already (with the author's lock); None: `judge` counts them when a rule asks.
    published_comments: int | None = None


APPROVED = Decision(Verdict.APPROVE, ReasonCode.PASSED, "passed every rule")

HELD_MESSAGE = "Thanks! Your comment will appear once a moderator has approved it."
REJECTED_MESSAGE = "Your comment contains language that is not allowed here. Please rephrase it."
DUPLICATE_MESSAGE = "You have already posted this comment."
RATE_LIMIT_MESSAGE = "You are commenting too quickly: at most {limit} every {window}. Please try again in {wait}."
NOT_VERIFIED_MESSAGE = "Please verify your email address before {doing}."
NOT_OPEN_MESSAGE = "This story is not open for comments."
CLOSED_MESSAGE = "Comments are closed on this story."
CLOSED_BY_AGE_MESSAGE = "Comments are closed."


def active_rules() -> tuple[Rule, ...]:
    """The active rules, from the cache or one query."""
    rules = cache.get(RULES_CACHE_KEY)
    if rules is None:
        rules = tuple(Rule.from_model(rule) for rule in ModerationRule.objects.filter(is_active=True))
        cache.set(RULES_CACHE_KEY, rules, RULES_CACHE_SECONDS)
    return rules


def forget_cached_rules() -> None:
    cache.delete(RULES_CACHE_KEY)


def _of_kind(rules: tuple[Rule, ...], kind: str) -> list[Rule]:
    return [rule for rule in rules if rule.kind == kind]


def effective_mode(story: Story, rules: tuple[Rule, ...], *, now: datetime | None = None) -> str:
    """The story's comment mode once the site's default and the closing by age are applied: the stricter wins."""
    if (
        story.comments_mode == Story.CommentsMode.CLOSED
        or _of_kind(rules, Kind.CLOSE_ALL)
        or _closed_by_age(story, rules, now=now or timezone.now()) is not None
    ):
        return Story.CommentsMode.CLOSED
    if story.comments_mode == Story.CommentsMode.PREMODERATED or _of_kind(rules, Kind.HOLD_ALL):
        return Story.CommentsMode.PREMODERATED
    return Story.CommentsMode.OPEN


def closed_notice(story: Story, rules: tuple[Rule, ...], *, now: datetime | None = None) -> str:
    """What a closed story's thread tells every reader (the refusal's message: "Comments are closed."
    when its age closed it); empty while it is open."""
    now = now or timezone.now()
    if effective_mode(story, rules, now=now) != Story.CommentsMode.CLOSED:
        return ""
    return _closed(story, rules, now=now).message


def comments_close_at(story: Story, rules: tuple[Rule, ...]) -> datetime | None:
    """When a rule closes this story's comments by its age, past or to come; None when no rule does."""
    closing = _closing_by_age(story, rules)
    return closing[0] if closing else None


def _closing_by_age(story: Story, rules: tuple[Rule, ...]) -> tuple[datetime, Rule] | None:
    """The earliest closing moment the "close after N days" rules for this story's source and section (or
    for every story) set, with the rule that sets it. The shortest wins, as the stricter mode does."""
    closings = [
        (story.published_at + timedelta(days=rule.limit), rule)
        for rule in _of_kind(rules, Kind.CLOSE_AFTER)
        if rule.limit is not None
        and rule.source_id in (None, story.source_id)
        and rule.section_id in (None, story.section_id)
    ]
    return min(closings, key=lambda closing: (closing[0], closing[1].id)) if closings else None


def _closed_by_age(story: Story, rules: tuple[Rule, ...], *, now: datetime) -> Rule | None:
    """The rule that has closed this story's comments by now because of its age, if any."""
    closing = _closing_by_age(story, rules)
    return closing[1] if closing and closing[0] <= now else None


def new_commenter_limit(rules: tuple[Rule, ...]) -> int:
    """How many published comments make an author no longer new to every new-commenter rule; 0 when none
    is active. Counting an author's published comments up to it answers all of them."""
    return max((rule.limit or 0 for rule in _of_kind(rules, Kind.NEW_ACCOUNT)), default=0)


def report_threshold(rules: tuple[Rule, ...]) -> int | None:
    """How many distinct readers' reports hide a comment for review; None when no rule says."""
    limits = [rule.limit for rule in _of_kind(rules, Kind.REPORTS) if rule.limit]
    return min(limits) if limits else None


def refusal(
    *,
    commenter: Commenter,
    email_verified: bool,
    story: Story | None,
    rules: tuple[Rule, ...],
    now: datetime,
    doing: str = "commenting",
) -> Decision | None:
    """Why this reader may not comment on this story, as a refusal; None when they may.

    The one answer for posting, editing, the form a thread offers and, without a story, reporting
    comments (which stays open on a closed story). `doing` completes "Please verify your email
    address before …".
    """
    standing = commenter.refusal(now=now)
    if standing is not None:
        code, message = standing
        return _refuse(code, message)
    if not email_verified:
        return _refuse(ReasonCode.NOT_VERIFIED, NOT_VERIFIED_MESSAGE.format(doing=doing))
    if story is None:
        return None
    if not story.is_visible:
        return _refuse(ReasonCode.CLOSED, NOT_OPEN_MESSAGE)
    if effective_mode(story, rules, now=now) == Story.CommentsMode.CLOSED:
        return _closed(story, rules, now=now)
    return None


def _closed(story: Story, rules: tuple[Rule, ...], *, now: datetime) -> Decision:
    """The refusal on a closed story, from what closed it: a site-wide rule, a moderator, or the story's age."""
    closing = _of_kind(rules, Kind.CLOSE_ALL)
    by_age = _closed_by_age(story, rules, now=now)
    if not closing and story.comments_mode != Story.CommentsMode.CLOSED and by_age is not None:
        reason = f"comments close {_plural(by_age.limit, 'day')} after publication"
        return Decision(Verdict.REFUSE, ReasonCode.CLOSED, reason, by_age.message or CLOSED_BY_AGE_MESSAGE, by_age)
    rule = closing[0] if closing else None
    message = (rule.message if rule and rule.message else "") or CLOSED_MESSAGE
    return Decision(Verdict.REFUSE, ReasonCode.CLOSED, "comments are closed", message, rule)


def gate(*, submission: Submission, rules: tuple[Rule, ...], now: datetime) -> Decision | None:
    """A refusal when this reader may not comment on this story at all."""
    return refusal(
        commenter=submission.commenter,
        email_verified=submission.email_verified,
        story=submission.story,
        rules=rules,
        now=now,
    )


def pace(*, submission: Submission, rules: tuple[Rule, ...], now: datetime) -> Decision | None:
    """A refusal when the author is over a rate limit or posted the same text within the window.

    Counts every comment the author wrote in the window, whatever became of it, so posting and
    deleting does not get round a limit. One query for all the rules, and one more when over a limit.
    The refusal names the limit that binds longest and says when every limit lets the author through.
    """
    is_new_account = now - submission.author_joined < timedelta(days=settings.COMMENTS_NEW_ACCOUNT_DAYS)
    rate_rules = [
        rule
        for rule in _of_kind(rules, Kind.RATE_LIMIT)
        if rule.limit is not None and rule.window_seconds and (is_new_account or not rule.new_accounts_only)
    ]
    duplicate_rules = [rule for rule in _of_kind(rules, Kind.DUPLICATE) if rule.window_seconds]
    if not rate_rules and not duplicate_rules:
        return None
    counted = _recent_counts(
        author_id=submission.author_id,
        fingerprint=submission.fingerprint,
        rate_since=[now - timedelta(seconds=rule.window_seconds) for rule in rate_rules],
        duplicate_since=[now - timedelta(seconds=rule.window_seconds) for rule in duplicate_rules],
    )
    found = {rule.id: count for rule, count in zip([*rate_rules, *duplicate_rules], counted, strict=True)}

    for rule in duplicate_rules:
        if found[rule.id]:
            message = rule.message or DUPLICATE_MESSAGE
            reason = f"same text posted within {_duration(rule.window_seconds)}"
            return Decision(Verdict.REFUSE, ReasonCode.DUPLICATE, reason, message, rule)
    over = [rule for rule in rate_rules if found[rule.id] >= rule.limit]
    if not over:
        return None
    # Every limit the author is over must let them through again: the one that takes longest binds.
    waits = _seconds_until_allowed(submission.author_id, over, now)
    rule = max(over, key=lambda r: (waits[r.id], r.window_seconds))
    wait = waits[rule.id]
    message = (rule.message or RATE_LIMIT_MESSAGE).format(
        limit=_plural(rule.limit, "comment"), window=_duration(rule.window_seconds), wait=_wait(wait)
    )
    reason = f"more than {rule.limit} in {_duration(rule.window_seconds)}"
    return Decision(Verdict.REFUSE, ReasonCode.RATE_LIMIT, reason, message, rule, retry_after=wait)


def judge(*, submission: Submission, rules: tuple[Rule, ...], is_edit: bool) -> Decision:
    """Reject, hold or approve the text. Every hold reason that applies is named; the first one decides."""
    text = normalise(submission.text)
    for rule in _of_kind(rules, Kind.BANNED_WORDS):
        word = rule.first_match(text)
        if word is not None:
            message = rule.message or REJECTED_MESSAGE
            return Decision(Verdict.REJECT, ReasonCode.BANNED_WORDS, f"contains the banned “{word}”", message, rule)

    holds: list[tuple[str, str, Rule | None]] = []
    for rule in _of_kind(rules, Kind.HOLD_ALL):
        holds.append((ReasonCode.PREMODERATED_SITE, "every comment on the site is pre-moderated", rule))
    if submission.story.comments_mode == Story.CommentsMode.PREMODERATED:
        holds.append((ReasonCode.PREMODERATED_STORY, "the story is pre-moderated", None))
    if submission.commenter.always_premoderate:
        holds.append((ReasonCode.PREMODERATED_USER, "the commenter is always pre-moderated", None))
    for rule in _of_kind(rules, Kind.SUSPECT_WORDS):
        word = rule.first_match(text)
        if word is not None:
            holds.append((ReasonCode.SUSPECT_WORDS, f"contains the suspect “{word}”", rule))
    links = count_links(submission.html)
    for rule in _of_kind(rules, Kind.LINKS):
        if rule.limit is not None and links > rule.limit:
            holds.append((ReasonCode.LINKS, f"{links} links, more than {rule.limit}", rule))
    if not is_edit:
        new_commenter_rules = [
            rule
            for rule in _of_kind(rules, Kind.NEW_ACCOUNT)
            if rule.limit and _published_count(submission, up_to=rule.limit) < rule.limit
        ]
        if new_commenter_rules and not is_trusted(submission.author_id):
            for rule in new_commenter_rules:
                reason = (
                    "the commenter's first comment"
                    if rule.limit == 1
                    else f"one of the commenter's first {rule.limit} comments"
                )
                holds.append((ReasonCode.NEW_ACCOUNT, reason, rule))

    if not holds:
        return APPROVED
    code, _, rule = holds[0]
    message = (rule.message if rule and rule.message else "") or HELD_MESSAGE
    return Decision(Verdict.HOLD, code, "; ".join(reason for _, reason, _ in holds), message, rule)


def moderate_new(*, submission: Submission, rules: tuple[Rule, ...], now: datetime) -> Decision:
    return (
        gate(submission=submission, rules=rules, now=now)
        or pace(submission=submission, rules=rules, now=now)
        or judge(submission=submission, rules=rules, is_edit=False)
    )


def moderate_edit(*, submission: Submission, rules: tuple[Rule, ...], now: datetime) -> Decision:
    return gate(submission=submission, rules=rules, now=now) or judge(submission=submission, rules=rules, is_edit=True)


def is_trusted(author_id: int) -> bool:
    """Whether the new-commenter rule passes this author by: staff and moderators, whom a queue of their
    own comments would only slow down, and readers with `COMMENTS_TRUSTED_AFTER_APPROVALS` comments
    approved by a moderator. Asked only when that rule would hold a comment, so most posts pay nothing."""
    staff = Q(is_staff=True) | Q(is_superuser=True) | Q(groups__name=MODERATORS_GROUP)
    if get_user_model().objects.filter(staff, pk=author_id).exists():
        return True
    needed = settings.COMMENTS_TRUSTED_AFTER_APPROVALS
    if needed <= 0:
        return False
    approved = (
        ModerationLog.objects.filter(
            subject_id=author_id, action=ModerationLog.Action.APPROVED, moderator__isnull=False, comment__isnull=False
        )
        .order_by()
        .values("comment_id")
        .distinct()
    )
    return len(approved[:needed]) >= needed


def _refuse(code: str, message: str) -> Decision:
    return Decision(Verdict.REFUSE, code, message.rstrip("."), message)


def _published_count(submission: Submission, *, up_to: int) -> int:
    if submission.published_comments is not None:
        return submission.published_comments
    published = Comment.objects.filter(author_id=submission.author_id, status=Comment.Status.VISIBLE)
    return len(published.values_list("pk")[:up_to])


def _recent_counts(
    *, author_id: int, fingerprint: str, rate_since: list[datetime], duplicate_since: list[datetime]
) -> list[int]:
    """For each rate window, how many comments the author wrote since it began; then for each duplicate
    window, how many with this text. One statement over the longest window."""
    adapt = connection.ops.adapt_datetimefield_value
    params = [adapt(since) for since in rate_since]
    for since in duplicate_since:
        params += [adapt(since), fingerprint]
    params += [author_id, adapt(min([*rate_since, *duplicate_since]))]
    with planned_once() as cursor:
        cursor.execute(_recent_counts_sql(len(rate_since), len(duplicate_since)), params)
        return list(cursor.fetchone())


@functools.cache
def _recent_counts_sql(rate_windows: int, duplicate_windows: int) -> str:
    """`_recent_counts`' statement, written out: through the ORM, building its filtered counts cost a post
    more CPU than the database's counting. Names come from the model, values are bound."""
    name = connection.ops.quote_name
    created_at, body_hash, author = (
        name(Comment._meta.get_field(f).column) for f in ("created_at", "body_hash", "author")
    )
    counts = [f"COUNT(CASE WHEN {created_at} >= %s THEN 1 END)"] * rate_windows
    counts += [f"COUNT(CASE WHEN {created_at} >= %s AND {body_hash} = %s THEN 1 END)"] * duplicate_windows
    return (
        f"SELECT {', '.join(counts)} FROM {name(Comment._meta.db_table)}"  # noqa: S608
        f" WHERE {author} = %s AND {created_at} >= %s"
    )


def _seconds_until_allowed(author_id: int, rules: list[Rule], now: datetime) -> dict[int, int]:
    """For each rule the author is at or over, the seconds until it lets them post again: until the
    comment `limit` places back from the newest leaves its window. One query for all of them."""
    longest = max(rule.window_seconds for rule in rules)
    recent = list(
        Comment.objects.filter(author_id=author_id, created_at__gte=now - timedelta(seconds=longest))
        .order_by("-created_at")
        .values_list("created_at", flat=True)[: max(rule.limit for rule in rules)]
    )
    waits = {}
    for rule in rules:
        if len(recent) < rule.limit or rule.limit == 0:
            waits[rule.id] = rule.window_seconds
            continue
        leaves = recent[rule.limit - 1] + timedelta(seconds=rule.window_seconds)
        waits[rule.id] = max(1, math.ceil((leaves - now).total_seconds()))
    return waits


@functools.lru_cache(maxsize=64)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern:
    """Whole-word, case-insensitive alternatives; a trailing * matches any ending ("spam*" finds "spammer")."""
    alternatives = []
    for word in words:
        stem = normalise(word)
        wildcard = stem.endswith("*")
        parts = [re.escape(part) for part in stem.rstrip("*").split(" ") if part]
        if not parts:
            continue
        alternatives.append(r"\s+".join(parts) + (r"\w*" if wildcard else ""))
    if not alternatives:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: int) -> str:
    if seconds < 60:
        return _plural(seconds, "second")
    if seconds < 3600:
        return _plural(round(seconds / 60), "minute")
    if seconds < 86400:
        return _plural(round(seconds / 3600), "hour")
    return _plural(round(seconds / 86400), "day")


def _wait(seconds: int) -> str:
    """A wait in words, never shorter than the wait: trying again when it says must work."""
    if seconds < 120:
        return _plural(seconds, "second")
    if seconds < 7200:
        return _plural(math.ceil(seconds / 60), "minute")
    return _plural(math.ceil(seconds / 3600), "hour")
