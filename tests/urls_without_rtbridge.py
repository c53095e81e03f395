"""A URLconf that does not mount rtbridge.urls."""

urlpatterns: list = []
