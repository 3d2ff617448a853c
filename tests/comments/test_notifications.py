"""Email on a reply: queued after the commit, sent by the worker, once, with a one-click unsubscribe."""

import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from comments import notifications, services, tasks
from comments.models import Comment, Commenter
from newsreader.celery import app as celery_app
from tests.conftest import require
from tests.factories import CommentFactory, StoryFactory, UserFactory
from tests.processes import CeleryProcess

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tasks_run_here():
    """Queued tasks run in this process, as a worker would run them."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def reply_to(parent: Comment, author, body="I see it differently.") -> Comment:
    return services.comment_create(story=parent.story, author=author, body=body, parent=parent)


@pytest.mark.django_db
@pytest.mark.usefixtures("rules", "tasks_run_here")
class TestReplyMail:
    def test_a_reply_is_mailed_to_the_parents_author_after_the_commit(
        self, author, other_reader, django_capture_on_commit_callbacks
    ):
        parent = CommentFactory(author=author)

        with django_capture_on_commit_callbacks(execute=False) as queued:
            reply = reply_to(parent, other_reader, "I *see* it differently.")
        assert mail.outbox == []  # posting itself sends nothing
        for callback in queued:
            callback()

        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == [author.email]
        assert message.subject == f"bea replied to your comment on “{parent.story.title}”"
        assert "I see it differently." in message.body
        assert f"/comments/c/{reply.pk}/#comment-{reply.pk}" in message.body
        token = notifications.unsubscribe_token(author)
        assert f"/comments/unsubscribe/{token}/" in message.body
        assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert token in message.extra_headers["List-Unsubscribe"]

    def test_a_reply_whose_queued_mail_was_lost_is_mailed_by_the_sweep(self, author, other_reader):
        parent = CommentFactory(author=author)
        reply = CommentFactory(story=parent.story, parent=parent, author=other_reader)  # posted, queue lost
        Comment.objects.filter(pk=reply.pk).update(created_at=timezone.now() - timedelta(minutes=5))
        just_posted = CommentFactory(story=parent.story, parent=parent, author=other_reader)

        assert tasks.sweep_reply_notifications() == 1

        assert [message.to for message in mail.outbox] == [[author.email]]
        assert tasks.sweep_reply_notifications() == 0
        just_posted.refresh_from_db()
        assert just_posted.reply_notified_at is None

    def test_a_reply_is_mailed_once_even_if_the_task_runs_again(
        self, author, other_reader, django_capture_on_commit_callbacks
    ):
        parent = CommentFactory(author=author)
        with django_capture_on_commit_callbacks(execute=True):
            reply = reply_to(parent, other_reader)

        assert tasks.send_reply_notification(reply.pk) is False
        assert len(mail.outbox) == 1

    def test_no_mail_for_replying_to_yourself(self, author, django_capture_on_commit_callbacks):
        parent = CommentFactory(author=author)

        with django_capture_on_commit_callbacks(execute=True):
            reply_to(parent, author)

        assert mail.outbox == []

    def test_no_mail_after_opting_out(self, author, other_reader, django_capture_on_commit_callbacks):
        parent = CommentFactory(author=author)
        services.commenter_set_reply_notifications(user=author, enabled=False)

        with django_capture_on_commit_callbacks(execute=True):
            reply_to(parent, other_reader)

        assert mail.outbox == []

    def test_a_held_reply_is_mailed_when_a_moderator_approves_it(
        self, rules, author, other_reader, moderator, django_capture_on_commit_callbacks
    ):
        rules("suspect_words", words="casino")
        parent = CommentFactory(author=author)
        with django_capture_on_commit_callbacks(execute=True):
            reply = reply_to(parent, other_reader, "casino tips")
        assert mail.outbox == []

        with django_capture_on_commit_callbacks(execute=True):
            services.comment_approve(comment=reply, moderator=moderator)

        assert len(mail.outbox) == 1

    def test_a_batch_looks_only_at_recent_replies_that_warrant_mail(self, author, other_reader):
        parent = CommentFactory(author=author)
        due = reply_to(parent, other_reader)
        reply_to(parent, author, "Answering myself.")
        mailed = reply_to(parent, other_reader, "Already mailed.")
        Comment.objects.filter(pk=mailed.pk).update(reply_notified_at=timezone.now())
        old = reply_to(parent, other_reader, "From before the batch's window.")
        Comment.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=11))
        quiet, unverified = UserFactory(), UserFactory()
        services.commenter_set_reply_notifications(user=quiet, enabled=False)
        unverified.emailaddress_set.update(verified=False)
        reply_to(CommentFactory(story=parent.story, author=quiet), other_reader, "To a reader who wants no mail.")
        reply_to(CommentFactory(story=parent.story, author=unverified), other_reader, "To an unverified address.")
        deleted = CommentFactory(story=parent.story, author=other_reader)
        reply_to(deleted, author, "To a comment deleted since.")
        services.comment_delete(comment=deleted, user=other_reader)

        assert notifications.waiting_reply_ids() == [due.pk]
        # The one from before the window is the sweep's, once it has settled.
        assert notifications.unsent_reply_ids(now=timezone.now() + timedelta(minutes=5)) == [old.pk, due.pk]

    def test_a_refused_send_hands_the_claim_back_for_a_retry(self, author, other_reader, settings):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", _closed_port(), 2
        reply = CommentFactory(parent=CommentFactory(author=author), author=other_reader)

        with pytest.raises(OSError):
            notifications.reply_notification_send(comment_id=reply.pk)

        reply.refresh_from_db()
        assert reply.reply_notified_at is None


@pytest.mark.django_db
class TestUnsubscribe:
    def test_the_link_opens_a_page_that_stops_reply_mail_in_one_click(self, client, author):
        url = f"/comments/unsubscribe/{notifications.unsubscribe_token(author)}/"

        page = client.get(url)
        assert page.status_code == 200
        assert "data-comment-autosubmit" in page.content.decode()
        assert Commenter.objects.filter(user=author, notify_replies=False).count() == 0

        done = client.post(url)
        assert "you will no longer get an email" in done.content.decode()
        assert Commenter.objects.get(user=author).notify_replies is False

    def test_mail_clients_can_unsubscribe_with_a_one_click_post(self, author):
        client = Client(enforce_csrf_checks=True)
        url = f"/comments/unsubscribe/{notifications.unsubscribe_token(author)}/"

        response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

        assert response.status_code == 200
        assert Commenter.objects.get(user=author).notify_replies is False

    @pytest.mark.parametrize("token", ["1:forged", "nonsense:x"])
    def test_a_forged_token_changes_nothing(self, client, author, token):
        response = client.post(f"/comments/unsubscribe/{token}/")

        assert response.status_code == 404
        assert "not valid" in response.content.decode()
        assert not Commenter.objects.filter(notify_replies=False).exists()

    def test_a_reader_turns_reply_mail_back_on_from_their_page(self, client, author):
        services.commenter_set_reply_notifications(user=author, enabled=False)
        client.force_login(author)

        client.post("/comments/my/notifications/", {"notify_replies": "on"})

        assert Commenter.objects.get(user=author).notify_replies is True


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_mails_replies_posted_together_in_one_batch(rules, tmp_path):
    require(bool(settings.REDIS_URL), "REDIS_URL is not set")
    require(connection.vendor == "postgresql", "the worker needs the shared PostgreSQL test database")
    parent_author = UserFactory(username="ana")
    parent = CommentFactory(story=StoryFactory(title="Night ferries"), author=parent_author)
    outbox = tmp_path / "mail"
    log = tmp_path / "worker.log"
    worker = CeleryProcess("worker", log=log, environment={"EMAIL_URL": f"filemail:///{outbox}"}).start()
    try:
        replies = [
            services.comment_create(
                story=parent.story, author=replier, body=f"Worth the wait, says {n}.", parent=parent
            )
            for n, replier in enumerate(UserFactory.create_batch(3))
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(outbox.glob("*.log"))) < 3:
            time.sleep(0.5)
        sent = "".join(path.read_text() for path in outbox.glob("*.log"))
    finally:
        worker.stop()

    assert sent.count(f"To: {parent_author.email}") == 3
    assert all(f"Worth the wait, says {n}." in sent for n in range(3))
    assert log.read_text().count("comments.tasks.send_waiting_reply_notifications[") == 2  # received, succeeded
    assert all(reply.reply_notified_at for reply in Comment.objects.filter(pk__in=[r.pk for r in replies]))
