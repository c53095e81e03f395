"""System checks (``manage.py check``): backend setting, vendor SDK, options, publishing models."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from . import conf
from .backends.loading import backend_class
from .model_config import get_config, registered_models
from .serializers import ModelSerializer

ERROR_IDS = {
    "E001": "RTBRIDGE_BACKEND is not a known alias or importable backend class",
    "E002": "the backend's vendor SDK is not installed",
    "E003": "a required backend option is missing from RTBRIDGE_OPTIONS",
    "E004": "RTBRIDGE_OPTIONS has an option the backend does not accept",
    "E005": "a publishing model has no serializer",
    "E006": "a publishing model's configuration is invalid",
    # Registered by rtbridge.server.checks (imported without Tornado):
    "E020": "RTBRIDGE_SERVER has an invalid value",
    "E021": "RTBRIDGE_ALLOWED_ORIGINS is invalid",
    "W030": "rtbridge is after django.contrib.staticfiles in INSTALLED_APPS (runserver: no socket)",
    # Registered by rtbridge.staticfiles:
    "E101": "the built JS client (rtbridge/static/rtbridge/) is missing",
    "W101": "STATICFILES_FINDERS still lists the retired RTBridgeJSFinder",
}


def _error(code: str, msg: str, hint: str, obj: Any = None) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=obj, id=f"rtbridge.{code}")


@checks.register("rtbridge")
def check_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check ``RTBRIDGE_BACKEND`` and ``RTBRIDGE_OPTIONS`` without opening any connection."""
    try:
        backend_type = backend_class()
    except ImproperlyConfigured as exc:
        return [
            _error(
                "E001",
                str(exc),
                f"Use one of {', '.join(conf.BACKEND_ALIASES)} or the dotted path of a "
                "BaseBackend subclass (module.ClassName).",
            )
        ]
    errors: list[checks.CheckMessage] = []
    try:
        backend_type.check_sdk()
    except ImproperlyConfigured as exc:
        extra = backend_type.sdk[1] if backend_type.sdk else backend_type.alias
        errors.append(_error("E002", str(exc), f"pip install 'rtbridge[{extra}]'"))
    try:
        options = conf.backend_options()
    except ImproperlyConfigured as exc:
        return [*errors, _error("E004", str(exc), "Make RTBRIDGE_OPTIONS a dict.")]
    accepted = set(backend_type.option_names())
    for name in backend_type.required_options:
        if name not in options:
            errors.append(
                _error(
                    "E003",
                    f"{backend_type.__name__} needs the option {name!r} in RTBRIDGE_OPTIONS.",
                    f"Add RTBRIDGE_OPTIONS = {{{name!r}: ...}}; see docs/backends.md.",
                )
            )
    for name in sorted(set(options) - accepted):
        errors.append(
            _error(
                "E004",
                f"{backend_type.__name__} does not accept the option {name!r}.",
                f"Accepted options: {', '.join(sorted(accepted)) or 'none'}.",
            )
        )
    return errors


@checks.register("rtbridge", checks.Tags.models)
def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that every publishing model has a usable serializer."""
    errors: list[checks.CheckMessage] = []
    for model in registered_models():
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        config = get_config(model)
        if config is None:
            continue
        if config.serializer is None:
            errors.append(
                _error(
                    "E005",
                    f"{model._meta.label} publishes its changes but has no serializer.",
                    "Set serializer = YourSerializer (or fields = [...]) in its RTBridge inner "
                    "class, or pass serializer= to rtbridge.register().",
                    obj=model,
                )
            )
            continue
        try:
            serializer = config.serializer_object
            if isinstance(serializer, ModelSerializer):
                serializer.field_sources()  # resolves the model and every named field
        except ImproperlyConfigured as exc:
            errors.append(
                _error("E006", str(exc), "Fix the serializer named in RTBridge.", obj=model)
            )
    return errors


#: The backends whose pages connect to the rtbridge server, which runserver then serves.
_SELF_HOSTED = frozenset({"local", "redis"})


@checks.register("rtbridge")
def check_runserver_order(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when staticfiles' ``runserver`` shadows rtbridge's (pages would get no socket)."""
    names = [config.name for config in apps.get_app_configs()]
    if "django.contrib.staticfiles" not in names or "rtbridge" not in names:
        return []
    if names.index("rtbridge") < names.index("django.contrib.staticfiles"):
        return []
    try:
        if backend_class().alias not in _SELF_HOSTED:
            return []  # hosted backends need no socket from runserver
    except ImproperlyConfigured:
        return []  # E001 reports it
    return [
        checks.Warning(
            "'rtbridge' comes after 'django.contrib.staticfiles' in INSTALLED_APPS, so "
            "`manage.py runserver` is staticfiles' own: pages load but their socket gets 404.",
            hint="List 'rtbridge' before 'django.contrib.staticfiles' (its runserver serves "
            "static files too), or run `manage.py rtbridge_server --with-django`.",
            id="rtbridge.W030",
        )
    ]
