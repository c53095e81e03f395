"""URLs for the test suite."""

urlpatterns: list = []
