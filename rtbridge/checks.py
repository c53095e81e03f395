"""System checks (``manage.py check``): backend, options, publishing models, routers, migrations."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.migrations.loader import MigrationLoader

from . import conf, routers
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
    "E007": "a model names two serializers: serializer_class and RTBridge.serializer",
    # Returned by ModelSerializer.check (SwampDragon's and DRF's options are never ignored):
    "E030": "a serializer Meta option rtbridge does not take (id_field, base_channel...)",
    "E031": "a serializer Meta sets both fields and publish_fields",
    "E032": "a serializer names a related serializer by a string",
    "E033": "a serializer's validate_<field>() is never called (the field is not writable)",
    "E034": "a serializer's serialize_<name>() cannot be called as serialize_<name>(obj)",
    # Returned by BaseRouter.check / ModelRouter.check:
    "E040": "a router attribute rtbridge never reads (get_query_set, valid_verbs...)",
    "E041": "a router hook rtbridge cannot call as documented (get_object, updated...)",
    "E042": "a router permission that is not an rtbridge.Permission",
    "E043": "a router overrides a verb without @rtbridge.verb",
    "E044": "a router's model or serializer is missing or invalid",
    "E050": "a migration imports swampdragon, which is not installed",
    # Registered by rtbridge.server.checks (imported without Tornado):
    "E020": "RTBRIDGE_SERVER has an invalid value",
    "E021": "RTBRIDGE_ALLOWED_ORIGINS is invalid",
    "E022": "RTBRIDGE_TOKEN_TTL is not a whole number of seconds >= 1",
    "W022": "rtbridge is after django.contrib.staticfiles in INSTALLED_APPS (runserver: no socket)",
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
        legacy = getattr(model, "serializer_class", None)
        inner = getattr(getattr(model, "RTBridge", None), "serializer", None)
        if legacy is not None and inner is not None and legacy != inner:
            errors.append(
                _error(
                    "E007",
                    f"{model._meta.label} names two serializers: serializer_class = {legacy!r} "
                    f"(SwampDragon's spelling) and RTBridge.serializer = {inner!r}; only the "
                    "second is used.",
                    "Remove one of them.",
                    obj=model,
                )
            )
        try:
            serializer = config.serializer_object
        except ImproperlyConfigured as exc:
            errors.append(
                _error("E006", str(exc), "Fix the serializer named in RTBridge.", obj=model)
            )
            continue
        if not isinstance(serializer, ModelSerializer):
            continue
        option_errors = type(serializer).check()
        if option_errors:
            errors.extend(option_errors)
            continue
        try:
            serializer.field_sources()  # resolves the model and every named field
        except ImproperlyConfigured as exc:
            errors.append(
                _error("E006", str(exc), "Fix the serializer named in RTBridge.", obj=model)
            )
    return _unique(errors)


@checks.register("rtbridge")
def check_routers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check every registered router (and its serializer): no attribute is silently ignored."""
    errors: list[checks.CheckMessage] = []
    for router_class in routers.routes().values():
        app_config = apps.get_containing_app_config(router_class.__module__)
        if app_configs is not None and app_config not in app_configs:
            continue
        errors.extend(router_class.check())
    return _unique(errors)


#: An import of SwampDragon in a migration (``import swampdragon.models``, ``from swampdragon...``).
_SWAMPDRAGON_IMPORT = re.compile(r"^\s*(?:import|from)\s+swampdragon\b", re.MULTILINE)


@checks.register("rtbridge")
def check_migrations(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Find migrations that import SwampDragon once it is uninstalled (``migrate`` would crash)."""
    if importlib.util.find_spec("swampdragon") is not None:
        return []
    errors: list[checks.CheckMessage] = []
    for app_config in app_configs or apps.get_app_configs():
        module_name, _explicit = MigrationLoader.migrations_module(app_config.label)
        try:
            spec = importlib.util.find_spec(module_name) if module_name else None
        except ImportError:
            continue
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(folder).glob("*.py")):
                if _SWAMPDRAGON_IMPORT.search(path.read_text(encoding="utf-8", errors="replace")):
                    errors.append(
                        _error(
                            "E050",
                            f"{path} imports swampdragon, which is not installed: migrate "
                            "will fail.",
                            "In bases=(...), replace swampdragon.models.SelfPublishModel with "
                            "nothing (historical models never publish) and drop the import, or "
                            "squash the app's migrations; see docs/migrating.md.",
                            obj=app_config.label,
                        )
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
            id="rtbridge.W022",
        )
    ]


def _unique(errors: list[checks.CheckMessage]) -> list[checks.CheckMessage]:
    """Drop repeats: one serializer may be used by several models and routers."""
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for error in errors:
        key = (error.id, error.msg, error.obj)
        if key not in seen:
            seen.add(key)
            unique.append(error)
    return unique
