"""URLs for ``path("rtbridge/", include("rtbridge.urls"))``: channel auth and data routers."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "rtbridge"

urlpatterns = [
    path("auth", views.auth_view, name="auth"),
    path("data/<str:route>/<str:verb>", views.data_view, name="data"),
]
