"""Mail to readers about their comments: someone replied to you, with a one-click way to stop such mail.

A reply is mailed at most once: the send claims the reply first, and hands the claim back if the mail
server refuses, so the task's retry can try again.
"""

from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core import signing
from django.core.mail import EmailMessage
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from newsreader.sanitize import html_to_text

from .models import Comment, Commenter

UNSUBSCRIBE_SALT = "comments.reply-notifications.unsubscribe"
EXCERPT_CHARACTERS = 1000


def unsubscribe_token(user) -> str:
    """A token that stops reply mail for this reader, valid until the site's secret key changes."""
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(user.pk))


def user_for_unsubscribe_token(token: str):
    """The reader a token was made for, or None when it is forged, damaged or their account is gone."""
    try:
        user_id = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return get_user_model().objects.filter(pk=user_id).first()


def absolute_url(path: str) -> str:
    base = settings.COMMENTS_EMAIL_BASE_URL.rstrip("/")
    if not base:
        scheme = "http" if settings.DEBUG else "https"
        base = f"{scheme}://{Site.objects.get_current().domain}"
    return base + path


# A reply's mail goes out with the next batch (`waiting_reply_ids`). A web process queues a batch when a reply
# is committed, at most once every REPLY_BATCH_SECONDS and to run that long and a second more later, so every
# reply committed before a batch is queued or while it waits is in it (comments.services.queue_reply_mail).
REPLY_BATCH_SECONDS = 2
# How far back a batch looks: replies older than that which a lost batch left are the sweep's.
REPLY_BATCH_WINDOW = timedelta(minutes=10)
# Replies whose mail may have been lost with the queue are queued again by the sweep for this long.
UNSENT_REPLY_WINDOW = timedelta(hours=6)
UNSENT_REPLY_BATCH = 500


def waiting_reply_ids(*, now=None) -> list[int]:
    """Replies of the last REPLY_BATCH_WINDOW whose mail is due and not sent, oldest first."""
    now = now or timezone.now()
    waiting = _replies_due_mail().filter(created_at__gte=now - REPLY_BATCH_WINDOW)
    return list(waiting.order_by("created_at").values_list("pk", flat=True)[:UNSENT_REPLY_BATCH])


def unsent_reply_ids(*, now=None) -> list[int]:
    """Replies whose mail is due and was never sent, posted a while ago: their batch was lost with the queue
    (a Redis restart) or with a worker."""
    now = now or timezone.now()
    settled = now - timedelta(seconds=settings.PIPELINE_RETRY_SECONDS)
    unsent = _replies_due_mail().filter(created_at__gte=now - UNSENT_REPLY_WINDOW, created_at__lt=settled)
    return list(unsent.order_by("created_at").values_list("pk", flat=True)[:UNSENT_REPLY_BATCH])


def _replies_due_mail():
    """Published replies not mailed yet, to a comment that is not deleted, by someone other than its author,
    whose author has a verified address and neither turned reply mail off nor was banned. Sending checks
    all this again; here it keeps the replies that warrant no mail from being looked at by every batch."""
    recipient = OuterRef("parent__author")
    return (
        Comment.objects.filter(
            status=Comment.Status.VISIBLE,
            parent__isnull=False,
            parent__author__isnull=False,
            reply_notified_at__isnull=True,
        )
        .exclude(parent__status=Comment.Status.DELETED)
        .exclude(parent__author=F("author"))
        .filter(Exists(EmailAddress.objects.filter(user=recipient, verified=True)))
        .exclude(Exists(Commenter.objects.filter(Q(notify_replies=False) | Q(is_banned=True), user=recipient)))
    )


def reply_notification_send(*, comment_id: int) -> bool:
    """Mail the parent comment's author about this reply, unless they opted out. True when mailed."""
    reply = Comment.objects.select_related("story", "author", "parent__author").filter(pk=comment_id).first()
    if reply is None or reply.status != Comment.Status.VISIBLE or reply.parent is None:
        return False
    recipient = reply.parent.author
    if recipient is None or recipient.pk == reply.author_id or reply.parent.status == Comment.Status.DELETED:
        return False
    commenter = Commenter.objects.filter(user=recipient).first()
    if commenter is not None and (not commenter.notify_replies or commenter.is_banned):
        return False
    address = (
        EmailAddress.objects.filter(user=recipient, verified=True)
        .order_by("-primary")
        .values_list("email", flat=True)
        .first()
    )
    if not address:
        return False
    claimed = Comment.objects.filter(pk=reply.pk, reply_notified_at__isnull=True).update(
        reply_notified_at=timezone.now()
    )
    if not claimed:
        return False
    try:
        _reply_message(reply, recipient, address).send()
    except Exception:
        Comment.objects.filter(pk=reply.pk).update(reply_notified_at=None)
        raise
    return True


def _reply_message(reply: Comment, recipient, address: str) -> EmailMessage:
    unsubscribe = absolute_url(reverse("comments:unsubscribe", kwargs={"token": unsubscribe_token(recipient)}))
    context = {
        "recipient": recipient,
        "reply": reply,
        "replier": reply.author.username if reply.author else "Someone",
        "story": reply.story,
        "excerpt": _excerpt(html_to_text(reply.body_html)),
        "reply_url": absolute_url(reply.get_absolute_url()),
        "unsubscribe_url": unsubscribe,
        "site_name": settings.SITE_NAME,
    }
    subject = " ".join(render_to_string("comments/email/reply_subject.txt", context).split())
    body = render_to_string("comments/email/reply_body.txt", context)
    return EmailMessage(
        subject=subject,
        body=body,
        to=[address],
        headers={"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )


def _excerpt(text: str) -> str:
    if len(text) <= EXCERPT_CHARACTERS:
        return text
    return text[:EXCERPT_CHARACTERS].rsplit(" ", 1)[0] + "…"
