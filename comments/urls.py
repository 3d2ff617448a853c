from django.urls import path

from . import views

app_name = "comments"

urlpatterns = [
    path("<slug:slug>/", views.thread_page, name="thread_page"),
    path("<slug:slug>/thread/", views.thread_fragment, name="thread"),
]
