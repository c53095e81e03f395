"""URLs of the browser test: the pages that load the JS client."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("module/", views.page, {"classic": False}, name="rtbridge-module-page"),
    path("classic/", views.page, {"classic": True}, name="rtbridge-classic-page"),
]
