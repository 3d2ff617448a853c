"""Readers' comments on stories."""

from django.conf import settings
from django.db import models


class CommentQuerySet(models.QuerySet):
    def visible(self) -> "CommentQuerySet":
        return self.filter(status=Comment.Status.VISIBLE)


class Comment(models.Model):
    """A reader's comment, stored both as the text they wrote and as sanitised HTML."""

    class Status(models.TextChoices):
        VISIBLE = "visible", "Visible"
        PENDING = "pending", "Awaiting moderation"
        REJECTED = "rejected", "Rejected"

    story = models.ForeignKey("stories.Story", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="comments")
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies")
    body_source = models.TextField("text as written")
    body_html = models.TextField("rendered text")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VISIBLE, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["story", "status", "created_at"], name="comment_thread_idx")]

    def __str__(self) -> str:
        return f"Comment {self.pk} on {self.story_id}"
