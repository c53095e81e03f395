"""URLs for ``path("rtbridge/", include("rtbridge.urls"))``: the channel auth endpoint."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "rtbridge"

urlpatterns = [
    path("auth", views.auth_view, name="auth"),
]
