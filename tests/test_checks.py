"""System checks: backend setting, vendor SDK, options, publishing models."""

from __future__ import annotations

import pytest
from django.core import checks

from rtbridge import publishers
from rtbridge.checks import check_backend, check_migrations, check_models, check_routers
from tests.testapp.models import Bare


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def test_valid_configuration_passes():
    assert check_backend() == []
    assert check_models() == []
    assert check_routers() == []
    assert check_migrations() == []


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        ("nosuch", "rtbridge.E001"),
        ("nosuch.module.Backend", "rtbridge.E001"),
        ("rtbridge.messages.Message", "rtbridge.E001"),
    ],
)
def test_bad_backend(settings, backend, expected):
    settings.RTBRIDGE_BACKEND = backend
    errors = check_backend()
    assert ids(errors) == [expected]
    assert errors[0].hint


def test_unknown_and_missing_options(settings):
    settings.RTBRIDGE_BACKEND = "tests.test_checks.NeedsKeyBackend"
    settings.RTBRIDGE_OPTIONS = {"colour": "red"}
    errors = check_backend()
    assert ids(errors) == ["rtbridge.E003", "rtbridge.E004"]
    assert "needs the option 'key'" in errors[0].msg
    assert "does not accept the option 'colour'" in errors[1].msg
    assert "fail_silently, key" in errors[1].hint


def test_missing_sdk(settings):
    settings.RTBRIDGE_BACKEND = "tests.test_checks.MissingSDKBackend"
    errors = check_backend()
    assert ids(errors) == ["rtbridge.E002"]
    assert errors[0].hint == "pip install 'rtbridge[vendor]'"


def test_publishing_model_without_serializer():
    publishers.register(Bare)
    try:
        errors = check_models()
        assert ids(errors) == ["rtbridge.E005"]
        assert errors[0].obj is Bare
    finally:
        publishers.unregister(Bare)


def test_publishing_model_with_broken_serializer():
    publishers.register(Bare, fields=["nope"])
    try:
        errors = check_models()
        assert ids(errors) == ["rtbridge.E006"]
        assert "'nope'" in errors[0].msg
    finally:
        publishers.unregister(Bare)


def test_checks_run_through_manage_py_check(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.RTBRIDGE_BACKEND = "nosuch"
    with pytest.raises(SystemCheckError, match="rtbridge.E001"):
        call_command("check")


from rtbridge.backends.base import BaseBackend  # noqa: E402


class NeedsKeyBackend(BaseBackend):
    required_options = ("key",)

    def __init__(self, *, key: str = "", **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]


class MissingSDKBackend(BaseBackend):
    sdk = ("rtbridge_no_such_sdk", "vendor")
