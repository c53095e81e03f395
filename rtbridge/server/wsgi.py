"""Adapt a WSGI app (Django) to Tornado's strict ``WSGIContainer``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def strict_headers(app: WSGIApp) -> WSGIApp:
    """Return ``app`` with leading/trailing whitespace stripped from its response headers.

    Django's ``WSGIHandler`` writes ``Set-Cookie`` values as ``" name=value; ..."`` (a leading
    space, from ``SimpleCookie.output(header="")``). Gunicorn and uWSGI tolerate that;
    Tornado's ``WSGIContainer`` raises on it and the request never gets an answer — so every
    page that sets a cookie (login, CSRF) would hang under ``--with-django``.
    """

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def clean_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            cleaned = [(name, value.strip()) for name, value in headers]
            if exc_info is None:
                return start_response(status, cleaned)
            return start_response(status, cleaned, exc_info)

        return app(environ, clean_start_response)

    return wrapped
