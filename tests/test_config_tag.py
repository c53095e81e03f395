"""``{% rtbridge_config %}`` carries the endpoints and the CSRF token the client's writes need."""

from __future__ import annotations

import json
import re

from django.template import Context, Template
from django.test import RequestFactory, override_settings


def render(context: dict) -> dict:
    html = Template("{% load rtbridge %}{% rtbridge_config %}").render(Context(context))
    return json.loads(re.search(r">(.*)</script>", html, re.S).group(1))


def test_config_names_the_endpoints_and_the_csrf_token():
    request = RequestFactory().get("/")
    config = render({"request": request})
    assert config["backend"] == "locmem"
    assert config["authEndpoint"] == "/rtbridge/auth"
    assert config["dataEndpoint"] == "/rtbridge/data"
    assert config["csrfToken"] and request.META["CSRF_COOKIE_NEEDS_UPDATE"]


@override_settings(ROOT_URLCONF="tests.urls_without_rtbridge")
def test_without_rtbridge_urls_or_request():
    assert render({}) == {"backend": "locmem"}
