from django.urls import path

from . import feeds, views

app_name = "stories"

urlpatterns = [
    path("", views.story_list, name="list"),
    path("stories/<slug:slug>/", views.story_detail, name="detail"),
    path("stories/<slug:slug>/report-label/", views.report_label, name="report_label"),
    path("feed/", feeds.LatestStoriesFeed(), name="feed"),
    path("feed/<slug:section>/", feeds.SectionStoriesFeed(), name="section_feed"),
]
