"""The browser test's view: a page with ``{% rtbridge_config %}`` and ``{% rtbridge_js %}``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def page(request: HttpRequest, classic: bool) -> HttpResponse:
    """Render the test page loading the client as an ES module or as a classic script."""
    template = "rtbridge_tests/classic.html" if classic else "rtbridge_tests/module.html"
    return render(request, template)
