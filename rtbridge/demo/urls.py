"""URLs of the todo demo: the board, login/logout, and rtbridge's auth and data endpoints."""

from __future__ import annotations

from django.urls import include, path

from .todo import views

urlpatterns = [
    path("", views.board, name="board"),
    path("login/", views.DemoLoginView.as_view(), name="login"),
    path("logout/", views.DemoLogoutView.as_view(), name="logout"),
    path("demo-sdk/<path:name>", views.sdk_file, name="sdk-file"),
    path("rtbridge/", include("rtbridge.urls")),
]
