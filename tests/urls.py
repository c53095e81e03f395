"""URLs for the test suite."""

from django.urls import include, path

urlpatterns = [
    path("rtbridge/", include("rtbridge.urls")),
]
