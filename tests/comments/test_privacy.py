"""A reader's own page, the export of their comments, and deleting their account."""

import json

import pytest
from django.contrib.auth import get_user_model

from comments import services
from comments.models import Comment, ModerationLog, Report
from stories.models import Story
from tests.conftest import PASSWORD
from tests.factories import CommentFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rules")]

Status = Comment.Status


def test_readers_page_lists_their_comments_with_their_fate_and_replies_to_them(client, story, author, other_reader):
    mine = services.comment_create(story=story, author=author, body="My view")
    CommentFactory(story=story, author=author, status=Status.REJECTED, reason_code="spam", body_html="<p>ad</p>")
    services.comment_create(story=story, author=other_reader, body="Your view is wrong", parent=mine)
    client.force_login(author)

    html = client.get("/comments/my/comments/").content.decode()

    assert "My view" in html and "Published" in html
    assert "Rejected" in html and "(Spam)" in html
    assert "Your view is wrong" in html and "bea" in html


def test_readers_page_needs_signing_in(client):
    assert client.get("/comments/my/comments/")["Location"].startswith("/accounts/login/")


def test_export_is_a_json_download_of_everything_they_wrote(client, story, author, other_reader):
    services.comment_create(story=story, author=author, body="First *thought*")
    services.comment_create(story=story, author=other_reader, body="not mine")
    client.force_login(author)

    response = client.get("/comments/my/export.json")

    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="comments-ana-')
    data = json.loads(response.content)
    assert data["username"] == "ana"
    assert [c["text"] for c in data["comments"]] == ["First *thought*"]
    assert data["comments"][0]["story"]["title"] == story.title


def test_deleting_the_account_leaves_deleted_tombstones_in_the_threads(client, story, author, other_reader):
    top = services.comment_create(story=story, author=author, body="Mine, with a reply")
    reply = services.comment_create(story=story, author=other_reader, body="A reply", parent=top)
    own_reply = services.comment_create(story=story, author=author, body="Mine again", parent=reply)
    services.comment_report(comment=reply, reporter=author, reason="spam")
    client.force_login(author)

    response = client.post("/comments/my/delete-account/", {"confirmation": PASSWORD})

    assert response.status_code == 302
    assert not get_user_model().objects.filter(username="ana").exists()
    for comment in (top, own_reply):
        comment.refresh_from_db()
        assert (comment.status, comment.author, comment.body_source, comment.body_html) == (
            Status.DELETED,
            None,
            "",
            "",
        )
    reply.refresh_from_db()
    assert (reply.parent_id, reply.status) == (top.pk, Status.VISIBLE)
    story.refresh_from_db()
    assert story.comment_count == 1
    assert Report.objects.get().reporter is None
    html = client.get(f"/comments/{story.slug}/thread/").content.decode()
    assert html.count("[deleted]") == 1 and "A reply" in html and "Mine" not in html
    assert "ana" not in html


def test_account_deletion_needs_the_password(client, author):
    client.force_login(author)

    response = client.post("/comments/my/delete-account/", {"confirmation": "wrong"})

    assert response.status_code == 422
    assert "That is not your password." in response.content.decode()
    assert get_user_model().objects.filter(pk=author.pk).exists()


def test_accounts_deleted_in_the_admin_also_leave_tombstones(story, author):
    comment = services.comment_create(story=story, author=author, body="Mine")

    author.delete()

    comment.refresh_from_db()
    assert (comment.status, comment.body_source) == (Status.DELETED, "")
    assert Story.objects.get(pk=story.pk).comment_count == 0
    assert ModerationLog.objects.filter(action="account_deleted").exists()


def test_no_address_in_clear_anywhere_a_comment_is_stored(client, story, author):
    client.force_login(author)
    client.post(f"/comments/{story.slug}/post/", {"body": "From an address"}, REMOTE_ADDR="198.51.100.23")

    comment = Comment.objects.get()
    stored = " ".join(str(value) for value in Comment.objects.values().get().values())
    assert comment.author_ip_hash
    assert "198.51.100.23" not in stored
    assert "198.51.100.23" not in " ".join(str(v) for row in ModerationLog.objects.values() for v in row.values())


def test_other_readers_cannot_export_or_see_someone_elses_comments(client, story, author):
    services.comment_create(story=story, author=author, body="private draft thoughts")
    client.force_login(UserFactory())

    data = json.loads(client.get("/comments/my/export.json").content)

    assert data["comments"] == []
    assert "private draft thoughts" not in client.get("/comments/my/comments/").content.decode()
