"""URLs of the one-script browser test: two pages that load the client as a module and as a classic script."""

from __future__ import annotations

from django.urls import include, path
from django.views.generic import TemplateView

urlpatterns = [
    path("module/", TemplateView.as_view(template_name="onescript/module.html")),
    path("classic/", TemplateView.as_view(template_name="onescript/classic.html")),
    path("rtbridge/", include("rtbridge.urls")),
]
