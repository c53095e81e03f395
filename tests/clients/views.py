"""The browser tests' views: pages with ``{% rtbridge_config %}`` that load the JS client."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


def page(request: HttpRequest, classic: bool) -> HttpResponse:
    """Render the test page loading the client as an ES module or as a classic script."""
    template = "rtbridge_tests/classic.html" if classic else "rtbridge_tests/module.html"
    return render(request, template)


@ensure_csrf_cookie
def live(request: HttpRequest) -> HttpResponse:
    """Render a page with a live list (``?list=<id>``) and/or a presence channel (``?item=<id>``).

    The CSRF cookie is set, as on any page of a Django site that posts with JavaScript.
    """
    return render(request, "rtbridge_tests/live.html")
