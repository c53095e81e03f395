"""URLs for ``path("rtbridge/", include("rtbridge.urls"))``: auth, history, data, config."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "rtbridge"

urlpatterns = [
    path("auth", views.auth_view, name="auth"),
    path("history", views.history_view, name="history"),
    path("data/<str:route>/<str:verb>", views.data_view, name="data"),
    path("config", views.config_view, name="config"),
]
