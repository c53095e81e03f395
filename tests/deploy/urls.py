"""The page of the deployment test: subscribes to one channel and lists what arrives."""

from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [path("live/", TemplateView.as_view(template_name="deploy/live.html"))]
