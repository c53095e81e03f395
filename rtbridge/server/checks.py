"""System checks of the server settings (``RTBRIDGE_SERVER``, origins, the token lifetime).

Register in the app's ``ready()``::

    from django.core import checks
    from rtbridge.server.checks import check_server_settings

    checks.register(check_server_settings, "rtbridge")

Imports no Tornado and opens no connection, so it runs in every ``manage.py check``.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .. import conf
from .config import OriginPolicy

__all__ = ["ERROR_IDS", "check_server_settings"]

ERROR_IDS = {
    "E020": "RTBRIDGE_SERVER has an unknown key or an invalid value",
    "E021": "RTBRIDGE_ALLOWED_ORIGINS has an entry that is not an origin",
    "E022": "RTBRIDGE_TOKEN_TTL is not a whole number of seconds >= 1",
}


def check_server_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report invalid ``RTBRIDGE_SERVER`` values and origins before a server starts."""
    errors: list[checks.CheckMessage] = []
    try:
        conf.server_settings()
    except ImproperlyConfigured as exc:
        errors.append(
            checks.Error(
                str(exc),
                hint="See the RTBRIDGE_SERVER table in docs/server.md for keys and defaults.",
                id="rtbridge.E020",
            )
        )
    try:
        OriginPolicy.from_settings()
    except ImproperlyConfigured as exc:
        errors.append(
            checks.Error(
                str(exc),
                hint="List origins as 'https://example.com' (scheme, host, optional port), "
                "or leave RTBRIDGE_ALLOWED_ORIGINS unset to derive them from ALLOWED_HOSTS.",
                id="rtbridge.E021",
            )
        )
    try:
        conf.token_ttl()
    except ImproperlyConfigured as exc:
        errors.append(
            checks.Error(
                str(exc),
                hint="Give the seconds a subscription token stays valid, e.g. 3600.",
                id="rtbridge.E022",
            )
        )
    return errors
