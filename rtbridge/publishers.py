"""``publish``/``apublish``, the backend cache, and (below) model publishing."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models import signals
from django.dispatch import receiver
from django.utils.module_loading import import_string

from . import channel_names, conf
from .backends.base import BaseBackend
from .exceptions import ImproperlyConfigured, PayloadTooLarge
from .messages import Message
from .middleware import sender_socket_id
from .serializers import ModelSerializer, as_serializer

__all__ = [
    "PublishConfig",
    "SelfPublishModel",
    "apublish",
    "flush",
    "get_backend",
    "get_config",
    "load_backend",
    "publish",
    "publish_instances",
    "register",
    "reset_backend",
    "suppress",
    "unregister",
]

_backend: BaseBackend | None = None
_backend_lock = threading.Lock()


def load_backend(path: str | None = None, **options: Any) -> BaseBackend:
    """Build a new backend from an alias or dotted path (default: ``RTBRIDGE_BACKEND``).

    ``options`` default to ``RTBRIDGE_OPTIONS``.
    """
    dotted = conf.resolve_backend_path(path)
    try:
        backend_class = import_string(dotted)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which cannot be imported: {exc}"
        ) from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseBackend)):
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND names {dotted!r}, which is not a subclass of "
            "rtbridge.backends.base.BaseBackend."
        )
    backend_class.check_sdk()
    if path is None and not options:
        options = conf.backend_options()
    return backend_class(**options)


def get_backend() -> BaseBackend:
    """Return the active backend, built once from the settings and cached."""
    global _backend
    backend = _backend
    if backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = load_backend()
            backend = _backend
    return backend


def reset_backend() -> None:
    """Close and forget the cached backend; the next publish builds it from the settings."""
    global _backend
    with _backend_lock:
        backend, _backend = _backend, None
    if backend is not None:
        backend.flush()
        backend.close()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RTBRIDGE_BACKEND", "RTBRIDGE_OPTIONS"):
        reset_backend()


def _build(
    backend: BaseBackend,
    channels: str | Iterable[str],
    event: str,
    data: Any,
    exclude: str | None,
) -> Message:
    return Message(channels, event, data, exclude=exclude, max_bytes=backend.max_payload_bytes)


def publish(
    channels: str | Iterable[str], event: str, data: Any = None, *, exclude: str | None = None
) -> Message:
    """Publish ``event`` with ``data`` on one channel or several; return the validated message.

    Everything is validated before the backend is called, so a bad name, data that is not
    JSON or an oversize payload raises (``InvalidMessage``) and nothing is published.
    ``exclude`` is the socket id of a client that must not receive it (usually the sender).
    """
    backend = get_backend()
    message = _build(backend, channels, event, data, exclude)
    backend.send([message])
    return message


async def apublish(
    channels: str | Iterable[str], event: str, data: Any = None, *, exclude: str | None = None
) -> Message:
    """Publish from async code without blocking the event loop; see :func:`publish`."""
    backend = get_backend()
    message = _build(backend, channels, event, data, exclude)
    await backend.asend([message])
    return message


def publish_messages(messages: list[Message]) -> None:
    """Send already-validated messages through the active backend, in order."""
    if messages:
        get_backend().send(messages)


def flush(timeout: float | None = None) -> None:
    """Wait until the active backend has sent everything it queued."""
    if _backend is not None:
        _backend.flush(timeout)


# Model publishing ---------------------------------------------------------------------------
#
# The flow: post_init snapshots the tracked field values; post_save / post_delete / m2m_changed
# build validated messages right away (so mistakes surface at the save call) and hand them to
# transaction.on_commit, so a rolled-back transaction publishes nothing.

logger = logging.getLogger("rtbridge.publishers")

EVENT_CREATED = "created"
EVENT_UPDATED = "updated"
EVENT_DELETED = "deleted"
#: Sent to a filter channel the object no longer matches (data: ``{"id": pk}``).
EVENT_LEFT = "left"
#: Sent to a filter channel the object now matches after an update (data: the whole object).
EVENT_ENTERED = "entered"
#: Sent instead of an event whose data is over the backend's size limit (data: ``{"id": pk}``).
EVENT_REFETCH = "refetch"

_STATE_ATTR = "_rtbridge_state"
_DEFERRED = object()
_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "rtbridge_suppressed", default=False
)
_registry: dict[type[models.Model], PublishConfig] = {}
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


@dataclass(frozen=True)
class PublishConfig:
    """How one model publishes: serializer, channel base, filter groups and events."""

    model: type[models.Model]
    serializer: Any
    base: str
    filters: tuple[tuple[str, ...], ...]
    object_channels: bool = True
    collection_channel: bool = True
    events: frozenset[str] = frozenset({EVENT_CREATED, EVENT_UPDATED, EVENT_DELETED})
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
        raise ImproperlyConfigured(
            f"{model._meta.label}.RTBridge has unknown option(s) {', '.join(sorted(unknown))}; "
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
    events = options.get("events", (EVENT_CREATED, EVENT_UPDATED, EVENT_DELETED))
    bad_events = set(events) - {EVENT_CREATED, EVENT_UPDATED, EVENT_DELETED}
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


def register(model: type[models.Model], **options: Any) -> PublishConfig:
    """Publish ``model``'s changes without inheriting :class:`SelfPublishModel`.

    Takes the same options as the ``RTBridge`` inner class (``serializer``, ``fields``,
    ``channel``, ``filters``, ``object_channels``, ``collection_channel``, ``events``).
    """
    if model._meta.abstract:
        raise ImproperlyConfigured(f"{model.__name__} is abstract; register concrete models.")
    config = build_config(model, **options)
    _registry[model] = config
    uid = f"rtbridge:{model._meta.label}"
    signals.post_init.connect(_on_post_init, sender=model, dispatch_uid=uid)
    signals.post_save.connect(_on_post_save, sender=model, dispatch_uid=uid)
    signals.post_delete.connect(_on_post_delete, sender=model, dispatch_uid=uid)
    return config


def unregister(model: type[models.Model]) -> None:
    """Stop publishing ``model``'s changes."""
    _registry.pop(model, None)
    uid = f"rtbridge:{model._meta.label}"
    for signal in (signals.post_init, signals.post_save, signals.post_delete):
        signal.disconnect(sender=model, dispatch_uid=uid)


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


class SelfPublishModel:
    """Mixin: publish ``created`` / ``updated`` / ``deleted`` after the transaction commits.

    ::

        class TodoItem(rtbridge.SelfPublishModel, models.Model):
            ...
            class RTBridge:
                serializer = TodoItemSerializer
                filters = ["todo_list_id"]

    Options of the ``RTBridge`` inner class: see :func:`register`. ``serializer_class`` as a
    class attribute is accepted too (SwampDragon's spelling).
    """

    __slots__ = ()


def _options_from_class(model: type[models.Model]) -> dict[str, Any]:
    inner = getattr(model, "RTBridge", None)
    options = (
        {name: value for name, value in vars(inner).items() if not name.startswith("_")}
        if inner is not None
        else {}
    )
    legacy = getattr(model, "serializer_class", None)
    if legacy is not None:
        options.setdefault("serializer", legacy)
    return options


@receiver(signals.class_prepared)
def _on_class_prepared(sender: type[models.Model], **kwargs: Any) -> None:
    # Migrations rebuild historical models in the module "__fake__"; those never publish.
    if (
        issubclass(sender, SelfPublishModel)
        and not sender._meta.abstract
        and sender.__module__ != "__fake__"
    ):
        register(sender, **_options_from_class(sender))


@contextmanager
def suppress() -> Iterator[None]:
    """Publish no model changes inside the block (e.g. bulk imports, data migrations)."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def _snapshot(instance: models.Model, config: PublishConfig) -> None:
    values = instance.__dict__
    instance.__dict__[_STATE_ATTR] = {name: values.get(name, _DEFERRED) for name in config.tracked}


def _on_post_init(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    config = _registry.get(sender)
    if config is not None:
        _snapshot(instance, config)


def _message(
    config: PublishConfig, channels: list[str], event: str, data: dict[str, Any], pk: Any
) -> Message | None:
    if not channels:
        return None
    backend = get_backend()
    exclude = sender_socket_id() if config.exclude_sender else None
    try:
        return Message(channels, event, data, exclude=exclude, max_bytes=backend.max_payload_bytes)
    except PayloadTooLarge:
        # Too big for this transport: tell clients to reload the object instead of losing it.
        logger.info(
            "rtbridge: %s %s of %s pk=%r is over %s bytes; publishing %r instead",
            config.model._meta.label,
            event,
            config.base,
            pk,
            backend.max_payload_bytes,
            EVENT_REFETCH,
        )
        return Message(channels, EVENT_REFETCH, {"id": pk, "event": event}, exclude=exclude)


def _dispatch_on_commit(messages: list[Message | None], using: str | None) -> None:
    ready = [m for m in messages if m is not None]
    if not ready:
        return

    def send() -> None:
        try:
            publish_messages(ready)
        except Exception:
            # The data is committed; raising here would turn a successful save into an error
            # page. Log loudly instead (direct rtbridge.publish() calls do raise).
            logger.exception(
                "rtbridge: publishing %d model change message(s) failed after commit",
                len(ready),
            )

    transaction.on_commit(send, using=using)


def _changed(instance: models.Model, config: PublishConfig, update_fields: Any) -> set[str]:
    state = instance.__dict__.get(_STATE_ATTR)
    current = instance.__dict__
    if state is None:
        return set(config.tracked)
    candidates = config.tracked
    if update_fields is not None:
        allowed = set(update_fields)
        candidates = tuple(
            f.attname
            for f in instance._meta.concrete_fields
            if f.attname in allowed or f.name in allowed
        )
    changed: set[str] = set()
    for name in candidates:
        if name not in current:
            continue
        before = state.get(name, _DEFERRED)
        if before is _DEFERRED or before != current[name]:
            changed.add(name)
    return changed


def _on_post_save(
    sender: type[models.Model],
    instance: models.Model,
    created: bool,
    raw: bool = False,
    using: str | None = None,
    update_fields: Any = None,
    **kwargs: Any,
) -> None:
    config = _registry.get(sender)
    if config is None or raw:
        return
    if _suppressed.get():
        _snapshot(instance, config)
        return
    current = {name: instance.__dict__.get(name) for name in config.tracked}
    pk = instance.pk
    messages: list[Message | None] = []
    if created:
        if EVENT_CREATED in config.events:
            data = config.serialize(instance)
            messages.append(_message(config, config.channels(pk, current), EVENT_CREATED, data, pk))
    else:
        changed = _changed(instance, config, update_fields)
        if changed and EVENT_UPDATED in config.events:
            state = instance.__dict__.get(_STATE_ATTR) or {}
            stable, left, entered = [], [], []
            if config.collection_channel:
                stable.append(channel_names.collection_channel(config.base))
            if config.object_channels:
                stable.append(channel_names.object_channel(config.base, pk))
            for group in config.filters:
                new_name = channel_names.filter_channel(
                    config.base, {name: current[name] for name in group}
                )
                if any(name in changed for name in group) and all(
                    state.get(name, _DEFERRED) is not _DEFERRED for name in group
                ):
                    old_name = channel_names.filter_channel(
                        config.base, {name: state[name] for name in group}
                    )
                    if old_name != new_name:
                        left.append(old_name)
                        entered.append(new_name)
                        continue
                stable.append(new_name)
            delta = config.serialize_changed(instance, changed)
            messages.append(_message(config, stable, EVENT_UPDATED, delta, pk))
            messages.append(_message(config, left, EVENT_LEFT, {"id": pk}, pk))
            if entered:
                full = config.serialize(instance)
                messages.append(_message(config, entered, EVENT_ENTERED, full, pk))
    _snapshot(instance, config)
    _dispatch_on_commit(messages, using)


def _on_post_delete(
    sender: type[models.Model], instance: models.Model, using: str | None = None, **kwargs: Any
) -> None:
    config = _registry.get(sender)
    if config is None or _suppressed.get() or EVENT_DELETED not in config.events:
        return
    state = instance.__dict__.get(_STATE_ATTR) or {}
    # The channels the object was on: its values as last loaded or saved.
    values = {
        name: state.get(name)
        if state.get(name, _DEFERRED) is not _DEFERRED
        else instance.__dict__.get(name)
        for name in config.tracked
    }
    pk = instance.pk
    message = _message(config, config.channels(pk, values), EVENT_DELETED, {"id": pk}, pk)
    _dispatch_on_commit([message], using)


def _m2m_field_name(model: type[models.Model], through: type[models.Model]) -> str | None:
    for m2m in model._meta.many_to_many:
        if m2m.remote_field.through is through:
            return m2m.name
    return None


@receiver(signals.m2m_changed)
def _on_m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set[Any] | None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    if not _registry or _suppressed.get():
        return
    if action == "pre_clear" and reverse:
        # post_clear carries no pk_set; remember who is about to lose the relation.
        if model in _registry:
            name = _m2m_field_name(model, sender)
            if name is not None:
                affected = model._default_manager.using(using).filter(**{name: instance})
                instance.__dict__["_rtbridge_cleared"] = list(affected.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        config = _registry.get(type(instance))
        name = _m2m_field_name(type(instance), sender)
        if config is None or name is None or EVENT_UPDATED not in config.events:
            return
        targets: list[models.Model] = [instance]
    else:
        config = _registry.get(model)
        name = _m2m_field_name(model, sender)
        if config is None or name is None or EVENT_UPDATED not in config.events:
            return
        pks = pk_set if action != "post_clear" else instance.__dict__.pop("_rtbridge_cleared", [])
        targets = list(model._default_manager.using(using).filter(pk__in=list(pks or ())))
    messages: list[Message | None] = []
    for target in targets:
        current = {attr: target.__dict__.get(attr) for attr in config.tracked}
        data = config.serialize_changed(target, {name})
        messages.append(
            _message(config, config.channels(target.pk, current), EVENT_UPDATED, data, target.pk)
        )
    _dispatch_on_commit(messages, using)


def publish_instances(
    instances: Iterable[models.Model], event: str = EVENT_UPDATED, *, using: str | None = None
) -> int:
    """Publish ``event`` with each object's full data; return how many were published.

    ``QuerySet.update()`` and ``bulk_create()`` send no signals, so the mixin cannot see them;
    call this afterwards (``publish_instances(TodoItem.objects.filter(...))`` or
    ``publish_instances(created_objs, "created")``). Inside a transaction the messages go out
    when it commits. The models must publish (mixin or :func:`register`).
    """
    if event not in (EVENT_CREATED, EVENT_UPDATED, EVENT_DELETED):
        raise ValueError(f"event={event!r} is not allowed; use 'created', 'updated' or 'deleted'.")
    messages: list[Message | None] = []
    database = using
    for instance in instances:
        config = _registry.get(type(instance))
        if config is None:
            raise ImproperlyConfigured(
                f"{type(instance)._meta.label} does not publish; add rtbridge.SelfPublishModel "
                "or call rtbridge.register() for it."
            )
        database = database or instance._state.db
        current = {name: instance.__dict__.get(name) for name in config.tracked}
        data = {"id": instance.pk} if event == EVENT_DELETED else config.serialize(instance)
        messages.append(
            _message(config, config.channels(instance.pk, current), event, data, instance.pk)
        )
    if _suppressed.get():
        return 0
    _dispatch_on_commit(messages, database)
    return sum(1 for m in messages if m is not None)
