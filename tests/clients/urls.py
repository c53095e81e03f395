"""URLs of the browser tests and the JS harness: the pages that load the JS client, rtbridge's endpoints."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("module/", views.page, {"classic": False}, name="rtbridge-module-page"),
    path("classic/", views.page, {"classic": True}, name="rtbridge-classic-page"),
    path("live/", views.live, name="rtbridge-live-page"),
    path("rtbridge/", include("rtbridge.urls")),
]
