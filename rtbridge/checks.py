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

from . import conf, redis_target, redis_wire, routers
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
    "E060": "RTBRIDGE_OPTIONS does not say where Redis is in a valid way (url/sentinel/cluster)",
    "E061": "Redis Cluster: an atomic operation would touch keys in different hash slots",
    "W061": "Redis Cluster: the prefix holds a hash tag, so every key lands in one slot",
    # Deploy checks (manage.py check --deploy), which connect to Redis:
    "E062": "Redis Cluster: a primary runs Redis < 7 (no sharded pub/sub)",
    "E063": "Redis Sentinel: the sentinels cannot name a primary for service_name",
    "E064": "Redis cannot be reached with RTBRIDGE_OPTIONS",
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


#: Channel names the cluster checks try: one of each kind, so every key builder is exercised.
_SAMPLE_CHANNELS = (
    "todo.todoitem",
    "todo.todoitem.5",
    "todo.todoitem;todo_list_id=1",
    "private-todo.todolist.1",
    "presence-todo.todolist.1",
)


def _redis_target() -> tuple[redis_target.RedisTarget | None, str, list[checks.CheckMessage]]:
    """Return the Redis target and prefix of a ``redis`` backend (``None``: not one, or bad)."""
    try:
        backend_type = backend_class()
        options = conf.backend_options()
    except ImproperlyConfigured:
        return None, "", []  # reported by check_backend
    if backend_type.alias != "redis":
        return None, "", []
    try:
        target = redis_target.from_options(options, "RTBRIDGE_OPTIONS")
        prefix = redis_wire.check_prefix(
            options.get("prefix", redis_wire.DEFAULT_PREFIX), "RTBRIDGE_OPTIONS['prefix']"
        )
    except ImproperlyConfigured as exc:
        hint = "See docs/server.md, 'One Redis, Sentinel or Cluster', for the three shapes."
        return None, "", [_error("E060", str(exc), hint)]
    return target, prefix, []


@checks.register("rtbridge")
def check_redis(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check where Redis is, and that every atomic operation fits Redis Cluster (no I/O)."""
    target, prefix, errors = _redis_target()
    if not isinstance(target, redis_target.ClusterRedis):
        return errors
    if "{" in prefix and "}" in prefix[prefix.index("{") :]:
        errors.append(
            checks.Warning(
                f"RTBRIDGE_OPTIONS['prefix']={prefix!r} holds a hash tag: every rtbridge key "
                "and channel lands in one slot, on one shard, so the cluster adds no capacity.",
                hint="Use a prefix without '{...}' (rtbridge puts the channel's own tag in "
                "each key).",
                id="rtbridge.W061",
            )
        )
        return errors
    for channel in _SAMPLE_CHANNELS:
        for operation, keys in redis_wire.multi_key_operations(prefix, channel).items():
            slots = {key: redis_wire.key_slot(key) for key in keys}
            if len(set(slots.values())) > 1:
                listed = ", ".join(f"{key} (slot {slot})" for key, slot in slots.items())
                errors.append(
                    _error(
                        "E061",
                        f"With Redis Cluster, {operation} on {channel!r} would touch {listed}: "
                        "Redis refuses a script or transaction across slots (CROSSSLOT).",
                        "This rtbridge version keeps these keys in different slots; use one "
                        "Redis or Sentinel (docs/server.md), or a version whose keys share the "
                        "channel's hash tag.",
                    )
                )
                return errors  # one is enough: the others have the same cause
    return errors


@checks.register("rtbridge", deploy=True)
def check_redis_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Connect to Redis (``check --deploy`` only): Cluster primaries run Redis 7+, Sentinel
    names a primary."""
    target, _prefix, errors = _redis_target()
    if target is None or errors:
        return errors
    try:
        client = redis_target.sync_client(target, socket_timeout=3, socket_connect_timeout=3)
    except redis_target.client_errors() as exc:
        return [_error("E064", f"Cannot reach Redis ({target.describe()}): {exc}", _REACH)]
    try:
        if isinstance(target, redis_target.ClusterRedis):
            for node in client.get_primaries():
                version = client.info("server", target_nodes=node)["redis_version"]
                if tuple(int(part) for part in version.split(".")[:2]) < (7, 0):
                    errors.append(
                        _error(
                            "E062",
                            f"Redis Cluster primary {node.name} runs Redis {version}; rtbridge "
                            "uses sharded pub/sub (SPUBLISH/SSUBSCRIBE), which needs Redis 7.0+.",
                            "Upgrade the cluster to Redis 7, or use one Redis or Sentinel.",
                        )
                    )
        else:
            client.ping()
    except _no_primary_errors() as exc:
        errors.append(
            _error(
                "E063",
                f"The sentinels ({target.describe()}) name no primary: {exc}",
                "Check service_name against 'sentinel monitor <name>' in sentinel.conf, and "
                "the sentinels' addresses and sentinel_password.",
            )
        )
    except redis_target.client_errors() as exc:
        errors.append(_error("E064", f"Cannot reach Redis ({target.describe()}): {exc}", _REACH))
    finally:
        client.close()
    return errors


_REACH = "Check the addresses and passwords in RTBRIDGE_OPTIONS, and that Redis is running."


def _no_primary_errors() -> tuple[type[BaseException], ...]:
    """Return redis-py's "the sentinels name no primary" error classes."""
    import redis.sentinel

    return (redis.sentinel.MasterNotFoundError,)


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
