"""``GET /rtbridge/config``: the client config for pages Django does not render, and the CSRF cookie."""

from __future__ import annotations

import json
import re
from typing import Any

from django.template import Context, Template
from django.test import Client, RequestFactory


def test_config_answers_what_the_template_tag_renders_and_sets_the_csrf_cookie(
    settings: Any,
) -> None:
    settings.RTBRIDGE_BACKEND = "local"
    settings.RTBRIDGE_SERVER = {"public_url": "wss://rt.example.com"}
    client = Client(enforce_csrf_checks=True)
    response = client.get("/rtbridge/config")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    config = json.loads(response.content)
    html = Template("{% load rtbridge %}{% rtbridge_config %}").render(
        Context({"request": RequestFactory().get("/")})
    )
    tag = json.loads(re.search(r">(.*)</script>", html, re.S).group(1))
    assert {**config, "csrfToken": None} == {**tag, "csrfToken": None}
    assert config == {
        "backend": "local",
        "url": "wss://rt.example.com/rtbridge/ws",
        "path": "/rtbridge/ws",
        "authEndpoint": "/rtbridge/auth",
        "dataEndpoint": "/rtbridge/data",
        "csrfToken": config["csrfToken"],
    }
    # The cookie is set and never cached with the visitor's token.
    assert response.cookies["csrftoken"].value
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    # The token passes Django's CSRF check on the auth endpoint (a 400 for the body, not a 403).
    answer = client.post(
        "/rtbridge/auth",
        data={"socket_id": "not a socket id"},
        HTTP_X_CSRFTOKEN=config["csrfToken"],
    )
    assert answer.status_code == 400, answer.content
    assert client.post("/rtbridge/auth", data={"socket_id": "x"}).status_code == 403  # no token


def test_config_answers_get_only() -> None:
    assert Client().post("/rtbridge/config").status_code == 405
