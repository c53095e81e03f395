"""The board page and the login page (with one-click buttons for the demo users)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import ensure_csrf_cookie

from .demo_data import DEMO_USERS

_JSON_ESCAPES = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


@login_required
@ensure_csrf_cookie  # the JS client sends the cookie's token with its data calls
def board(request: HttpRequest) -> HttpResponse:
    """Render the board; the lists and items are loaded and kept current by the page."""
    user: Any = request.user  # login_required: never anonymous here
    me = {"id": str(user.pk), "name": user.get_full_name() or user.get_username()}
    others = [u for u in DEMO_USERS if u.username != user.get_username()]
    return render(
        request,
        "todo/board.html",
        {
            "me": me,
            "sdk_scripts": getattr(settings, "RTBRIDGE_DEMO_SDK", []),
            "backend": settings.RTBRIDGE_BACKEND,
            "firebase": settings.RTBRIDGE_BACKEND == "firebase",
            "import_map": _import_map(),
            "other_user": others[0] if others else None,
        },
    )


def _import_map() -> str:
    imports = getattr(settings, "RTBRIDGE_DEMO_IMPORT_MAP", {})
    if not imports:
        return ""
    # Escaped like json_script: no value can close the <script> element.
    text = json.dumps({"imports": imports}).translate(_JSON_ESCAPES)
    return mark_safe(text)


class DemoLoginView(auth_views.LoginView):
    """Django's login view, listing the demo users and their passwords."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["demo_users"] = DEMO_USERS
        return context


class DemoLogoutView(auth_views.LogoutView):
    """Django's logout view (POST)."""


def sdk_file(request: HttpRequest, name: str) -> FileResponse:
    """Serve a local copy of the hosted backend's JS SDK (``RTBRIDGE_DEMO_*_JS`` as a path)."""
    path = getattr(settings, "RTBRIDGE_DEMO_SDK_FILES", {}).get(name)
    if path is None:
        raise Http404(f"No SDK file {name!r}; the demo serves only the files it was given.")
    return FileResponse(open(path, "rb"), content_type="text/javascript")
