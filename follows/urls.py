"""URLs of the reader's follows, saved stories and digest."""

from django.urls import path, re_path

from . import views

app_name = "follows"

urlpatterns = [
    path("following/", views.following, name="following"),
    path("following/follow/", views.follow, name="follow"),
    path("following/unfollow/", views.unfollow, name="unfollow"),
    path("saved/", views.saved, name="saved"),
    path("saved/<slug:slug>/add/", views.save_story, name="save_story"),
    path("saved/<slug:slug>/remove/", views.unsave_story, name="unsave_story"),
    path("digest/", views.digest_settings, name="digest_settings"),
    # Signed tokens always hold a colon.
    re_path(r"^digest/unsubscribe/(?P<token>[^/]+:[^/]+)/$", views.digest_unsubscribe, name="digest_unsubscribe"),
]
