"""URLs for ``path("rtbridge/", include("rtbridge.urls"))``: auth, data routers, client config."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "rtbridge"

urlpatterns = [
    path("auth", views.auth_view, name="auth"),
    path("data/<str:route>/<str:verb>", views.data_view, name="data"),
    path("config", views.config_view, name="config"),
]
