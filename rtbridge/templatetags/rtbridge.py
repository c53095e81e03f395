"""``{% rtbridge_config %}`` and ``{% rtbridge_js %}``: the JS client's config and script tags."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template import Context
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString

from ..publishers import get_backend
from ..staticfiles import script_path

__all__ = [
    "CONFIG_ELEMENT_ID",
    "page_config",
    "rtbridge_config",
    "rtbridge_js",
    "rtbridge_js_url",
]

register = template.Library()

#: The element id ``connect()`` reads when it is called without a config.
CONFIG_ELEMENT_ID = "rtbridge-config"


def page_config(request: HttpRequest | None = None) -> dict[str, Any]:
    """Return the JS client's config for a page: ``client_config()`` and the endpoints.

    When ``include("rtbridge.urls")`` is mounted, the config names the auth and data
    endpoints (``authEndpoint``, ``dataEndpoint``); with a ``request`` it carries the CSRF
    token (``csrfToken``, which also sets the CSRF cookie, as ``{% csrf_token %}`` does) so
    the client's writes pass Django's CSRF check. ``{% rtbridge_config %}`` renders it and
    ``GET /rtbridge/config`` answers it (for pages Django does not render).
    """
    config = dict(get_backend().client_config())
    try:
        config.setdefault("authEndpoint", reverse("rtbridge:auth"))
        data_call = reverse("rtbridge:data", args=("route", "verb"))
        config.setdefault("dataEndpoint", data_call[: -len("/route/verb")])
    except NoReverseMatch:
        pass  # rtbridge.urls is not mounted: the client uses its defaults.
    if request is not None:
        config["csrfToken"] = get_token(request)
    return config


@register.simple_tag(takes_context=True)
def rtbridge_config(context: Context, element_id: str = CONFIG_ELEMENT_ID) -> SafeString:
    """Render :func:`page_config` as a ``<script type="application/json">`` element.

    The JSON is escaped like Django's ``json_script`` (``<``, ``>`` and ``&`` become ``\\uXXXX``),
    so no value can close the element. ``client_config()`` holds public values only.
    """
    return json_script(page_config(context.get("request")), element_id)


@register.simple_tag
def rtbridge_js_url(classic: bool = False) -> str:
    """Return the URL of the client build for the active backend (what ``rtbridge_js`` loads).

    Module code imports from it, ``import { connect } from "{% rtbridge_js_url %}"``, and
    shares the instance of the ``{% rtbridge_js %}`` tag (same URL, one download). The URL
    goes through ``static()``, so ``ManifestStaticFilesStorage`` gives the hashed name.
    """
    backend = str(get_backend().client_config().get("backend", ""))
    return static(script_path(backend, classic=classic))


@register.simple_tag
def rtbridge_js(classic: bool = False, nonce: str = "") -> SafeString:
    """Render the script tag of the active backend's client build: one minified file.

    The ES module by default, the classic script with ``classic=True``; both set
    ``window.RTBridge`` (the module one once modules have run). ``nonce`` is copied to the tag
    for a Content-Security-Policy.
    """
    nonce_attr = format_html(' nonce="{}"', nonce) if nonce else ""
    src = rtbridge_js_url(classic=classic)
    if classic:
        return format_html('<script src="{}"{}></script>', src, nonce_attr)
    return format_html('<script type="module" src="{}"{}></script>', src, nonce_attr)
