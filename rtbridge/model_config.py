"""Per-model publishing config (``PublishConfig``, filters) and the registry of the models."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import models
from django.utils.module_loading import import_string

from . import channel_names
from .exceptions import ImproperlyConfigured
from .serializers import ModelSerializer, as_serializer

__all__ = [
    "EVENT_CREATED",
    "EVENT_DELETED",
    "EVENT_UPDATED",
    "MODEL_EVENTS",
    "PublishConfig",
    "add_config",
    "build_config",
    "config_for_base",
    "get_config",
    "registered_models",
    "remove_config",
]

EVENT_CREATED = "created"
EVENT_UPDATED = "updated"
EVENT_DELETED = "deleted"
#: The model-change events a model may publish (its ``events`` option), in this order.
MODEL_EVENTS = (EVENT_CREATED, EVENT_UPDATED, EVENT_DELETED)

#: The options of the ``RTBridge`` inner class and of ``rtbridge.register()``.
_CONFIG_OPTIONS = frozenset(
    {
        "serializer",
        "fields",
        "channel",
        "filters",
        "object_channels",
        "collection_channel",
        "events",
        "authorize",
        "exclude_sender",
    }
)

#: SwampDragon names a migrant may put in the ``RTBridge`` inner class, and rtbridge's names.
_FOREIGN_OPTIONS = {
    "serializer_class": "serializer = ... (SwampDragon's serializer_class model attribute, outside "
    "the RTBridge class, works too)",
    "publish_fields": "fields = [...] here, or the serializer's Meta.fields (publish_fields there "
    "is an alias)",
    "base_channel": "channel = 'app_label.model_name'",
    "update_fields": "the serializer's Meta.update_fields",
    "create_fields": "the serializer's Meta.create_fields",
    "exclude": "the serializer's Meta.exclude",
}

_registry: dict[type[models.Model], PublishConfig] = {}


@dataclass(frozen=True)
class PublishConfig:
    """How one model publishes: serializer, channel base, filter groups and events."""

    model: type[models.Model]
    serializer: Any
    base: str
    filters: tuple[tuple[str, ...], ...]
    object_channels: bool = True
    collection_channel: bool = True
    events: frozenset[str] = frozenset(MODEL_EVENTS)
    tracked: tuple[str, ...] = field(default=())
    #: ``authorize(user, values) -> bool`` for the model's ``private-`` channels, or None.
    authorize: Callable[[Any, dict[str, str]], bool] | None = None
    #: Leave out the socket that sent the request (``SocketIdMiddleware``); default True.
    exclude_sender: bool = True

    @cached_property
    def serializer_object(self) -> Any:
        """Return the serializer, resolved: a ModelSerializer instance or a DRF class."""
        owner = f"{self.model._meta.label}.RTBridge.serializer"
        value = self.serializer
        if isinstance(value, str):
            try:
                value = import_string(value)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"{owner} = {value!r} cannot be imported: {exc}"
                ) from exc
        if isinstance(value, type) and issubclass(value, ModelSerializer):
            value = value()
        as_serializer(value, owner=owner)  # validates the kind of serializer
        return value

    @cached_property
    def serialize(self) -> Callable[[models.Model], dict[str, Any]]:
        """Return the function that turns an instance into its whole payload."""
        return as_serializer(self.serializer_object)

    def serialize_changed(self, obj: models.Model, attnames: set[str]) -> dict[str, Any]:
        """Return ``id`` plus the payload keys that depend on the changed attributes."""
        serializer = self.serializer_object
        if isinstance(serializer, ModelSerializer):
            return serializer.serialize_changed(obj, attnames)
        names = attnames | {f.name for f in obj._meta.concrete_fields if f.attname in attnames}
        return {k: v for k, v in self.serialize(obj).items() if k == "id" or k in names}

    def channels(self, pk: Any, values: dict[str, Any]) -> list[str]:
        """Return the collection, object and filter channels for ``pk`` and field ``values``."""
        names: list[str] = []
        if self.collection_channel:
            names.append(channel_names.collection_channel(self.base))
        if self.object_channels:
            names.append(channel_names.object_channel(self.base, pk))
        names.extend(self.filter_channels(values))
        return names

    def filter_channels(self, values: dict[str, Any]) -> list[str]:
        """Return one filter channel per declared filter group, from attribute ``values``."""
        return [
            channel_names.filter_channel(self.base, {name: values[name] for name in group})
            for group in self.filters
        ]


def _normalize_filters(
    model: type[models.Model], filters: Iterable[Any]
) -> tuple[tuple[str, ...], ...]:
    attnames = {f.attname: f for f in model._meta.concrete_fields}
    names = {f.name: f for f in model._meta.concrete_fields}
    groups: list[tuple[str, ...]] = []
    if isinstance(filters, str):
        raise ImproperlyConfigured(
            f"{model._meta.label}.RTBridge.filters = {filters!r} is a string; give a list such "
            f"as [{filters!r}]."
        )
    for entry in filters:
        group = (entry,) if isinstance(entry, str) else tuple(entry)
        resolved: list[str] = []
        for key in group:
            canonical = channel_names.normalize_filter_key(key)
            if canonical in attnames:
                resolved.append(canonical)
            elif canonical in names:
                resolved.append(names[canonical].attname)
            else:
                raise ImproperlyConfigured(
                    f"{model._meta.label}.RTBridge.filters names {key!r}, which is not a "
                    f"concrete field of {model._meta.label}; filters are equality filters on "
                    f"fields such as {', '.join(sorted(attnames))}."
                )
        groups.append(tuple(sorted(set(resolved))))
    return tuple(dict.fromkeys(groups))


def build_config(model: type[models.Model], **options: Any) -> PublishConfig:
    """Validate publishing ``options`` for ``model`` and return its :class:`PublishConfig`."""
    unknown = set(options) - _CONFIG_OPTIONS
    if unknown:
        # Raised when the model class is created, as Django does for an unknown Meta option:
        # no process ever runs with an option ignored.
        advice = []
        for name in sorted(unknown):
            close = difflib.get_close_matches(name, _CONFIG_OPTIONS, n=1)
            instead = _FOREIGN_OPTIONS.get(name) or (f"{close[0]}?" if close else None)
            advice.append(f"{name} (use {instead})" if instead else name)
        raise ImproperlyConfigured(
            f"{model._meta.label}.RTBridge has unknown option(s) {', '.join(advice)}; "
            f"allowed: {', '.join(sorted(_CONFIG_OPTIONS))}."
        )
    serializer = options.get("serializer")
    fields = options.get("fields")
    if serializer is None and fields is not None:
        serializer = type(
            f"{model.__name__}AutoSerializer",
            (ModelSerializer,),
            {"Meta": type("Meta", (), {"model": model, "fields": list(fields)})},
        )
    concrete = model._meta.concrete_model or model
    base = options.get("channel") or f"{concrete._meta.app_label}.{concrete._meta.model_name}"
    authorizer = options.get("authorize")
    if isinstance(authorizer, str):
        authorizer = import_string(authorizer)
    if authorizer is not None:
        if not callable(authorizer):
            raise ImproperlyConfigured(
                f"{model._meta.label}.RTBridge.authorize = {authorizer!r} is not callable; give "
                "a function authorize(user, values) -> bool or its dotted path."
            )
        # Protected on every transport: Pusher, PubNub and Firebase only authorize by name.
        if not base.startswith(channel_names.PRIVATE_PREFIX):
            base = channel_names.PRIVATE_PREFIX + base
    channel_names.collection_channel(base)  # validates the base
    events = options.get("events", MODEL_EVENTS)
    bad_events = set(events) - set(MODEL_EVENTS)
    if bad_events:
        raise ImproperlyConfigured(
            f"{model._meta.label}.RTBridge.events has {sorted(bad_events)}; allowed: "
            "'created', 'updated', 'deleted'."
        )
    return PublishConfig(
        model=model,
        serializer=serializer,
        base=base,
        filters=_normalize_filters(model, options.get("filters", ())),
        object_channels=bool(options.get("object_channels", True)),
        collection_channel=bool(options.get("collection_channel", True)),
        events=frozenset(events),
        tracked=tuple(f.attname for f in model._meta.concrete_fields),
        authorize=authorizer,
        exclude_sender=bool(options.get("exclude_sender", True)),
    )


def add_config(config: PublishConfig) -> None:
    """Record ``config`` as its model's publishing config (replacing an earlier one)."""
    _registry[config.model] = config


def remove_config(model: type[models.Model]) -> None:
    """Forget ``model``'s publishing config, if it has one."""
    _registry.pop(model, None)


def get_config(model: type[models.Model]) -> PublishConfig | None:
    """Return the publishing config of ``model``, or ``None`` if it does not publish."""
    return _registry.get(model)


def config_for_base(base: str) -> PublishConfig | None:
    """Return the config whose collection channel is ``base``, or ``None``."""
    for config in _registry.values():
        if config.base == base:
            return config
    return None


def registered_models() -> list[type[models.Model]]:
    """Return every model that publishes its changes."""
    return list(_registry)
