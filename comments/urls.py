"""Comment URLs. The comment and reader paths come first; none can be mistaken for a story's
`<slug>/`, `<slug>/thread/` or `<slug>/post/`."""

from django.urls import path, re_path

from . import views

app_name = "comments"

urlpatterns = [
    path("c/<int:pk>/", views.comment_page, name="comment"),
    path("c/<int:pk>/reply/", views.reply, name="reply"),
    path("c/<int:pk>/edit/", views.edit, name="edit"),
    path("c/<int:pk>/delete/", views.delete, name="delete"),
    path("c/<int:pk>/report/", views.report, name="report"),
    path("c/<int:pk>/recommend/", views.recommend, name="recommend"),
    path("c/<int:pk>/pick/", views.pick, name="pick"),
    path("my/comments/", views.activity, name="activity"),
    path("my/notifications/", views.notification_settings, name="notification_settings"),
    path("my/export.json", views.export, name="export"),
    path("my/delete-account/", views.delete_account, name="delete_account"),
    # Signed tokens always hold a colon, which no story slug does.
    re_path(r"^unsubscribe/(?P<token>[^/]+:[^/]+)/$", views.unsubscribe, name="unsubscribe"),
    path("<slug:slug>/", views.thread_page, name="thread_page"),
    path("<slug:slug>/thread/", views.thread_fragment, name="thread"),
    path("<slug:slug>/live/", views.live, name="live"),
    path("<slug:slug>/post/", views.post_comment, name="post"),
]
