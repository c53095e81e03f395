"""``{% rtbridge_config %}`` and ``{% rtbridge_js %}``: the JS client's config and script tags."""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString

from ..publishers import get_backend

__all__ = ["CLASSIC_SCRIPT", "CONFIG_ELEMENT_ID", "MODULE_SCRIPT", "rtbridge_config", "rtbridge_js"]

register = template.Library()

#: The element id ``connect()`` reads when it is called without a config.
CONFIG_ELEMENT_ID = "rtbridge-config"
#: The ES module that loads the client and sets ``window.RTBridge``.
MODULE_SCRIPT = "rtbridge/global.js"
#: The classic-script build (``window.RTBridge`` for pages without modules).
CLASSIC_SCRIPT = "rtbridge/rtbridge.iife.js"


@register.simple_tag
def rtbridge_config(element_id: str = CONFIG_ELEMENT_ID) -> SafeString:
    """Render the active backend's ``client_config()`` as a ``<script type="application/json">``.

    The JSON is escaped like Django's ``json_script`` (``<``, ``>`` and ``&`` become ``\\uXXXX``),
    so no value can close the element. ``client_config()`` holds public values only.
    """
    return json_script(get_backend().client_config(), element_id)


@register.simple_tag
def rtbridge_js(classic: bool = False, nonce: str = "") -> SafeString:
    """Render the client's script tag: the ES module, or the classic build with ``classic=True``.

    Both make ``window.RTBridge`` available (the module one once modules have run); module
    code can also ``import { connect } from "{% static 'rtbridge/rtbridge.js' %}"``.
    ``nonce`` is copied to the tag for a Content-Security-Policy.
    """
    nonce_attr = format_html(' nonce="{}"', nonce) if nonce else ""
    if classic:
        return format_html('<script src="{}"{}></script>', static(CLASSIC_SCRIPT), nonce_attr)
    return format_html(
        '<script type="module" src="{}"{}></script>', static(MODULE_SCRIPT), nonce_attr
    )
