"""Views for the ``--with-django`` tests: a fast one, a slow one and one that publishes."""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.urls import path

import rtbridge


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello from django")


def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(float(request.GET.get("seconds", "2")))
    return HttpResponse("slow done")


def publish(request: HttpRequest) -> HttpResponse:
    rtbridge.publish(
        request.GET["channel"],
        "created",
        {"n": int(request.GET.get("n", "0"))},
        exclude=request.GET.get("exclude") or None,
    )
    return HttpResponse("published")


urlpatterns = [
    path("hello/", hello),
    path("slow/", slow),
    path("publish/", publish),
]
