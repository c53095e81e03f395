"""The Django app: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class RTBridgeConfig(AppConfig):
    """rtbridge's app config."""

    name = "rtbridge"
    verbose_name = "rtbridge"

    def ready(self) -> None:
        from django.core import checks as django_checks

        from . import auth, checks, routers  # noqa: F401  (checks registers the system checks)
        from .server.checks import check_server_settings
        from .staticfiles import check_finder

        django_checks.register(check_finder, "rtbridge")
        django_checks.register(check_server_settings, "rtbridge")
        auth.autodiscover()
        routers.autodiscover()
