"""``publish``/``apublish``/``revoke``, the backend cache, and (below) model publishing."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models import signals
from django.dispatch import receiver

from . import channel_names, conf, history
from .backends.base import BaseBackend
from .backends.loading import backend_class
from .exceptions import ImproperlyConfigured, PayloadTooLarge, ServerNotRunning
from .messages import Message
from .middleware import sender_socket_id
from .model_config import (
    EVENT_CREATED,
    EVENT_DELETED,
    EVENT_UPDATED,
    MODEL_EVENTS,
    PublishConfig,
    add_config,
    build_config,
    config_for_base,
    get_config,
    registered_models,
    remove_config,
)
from .tokens import user_id_of

__all__ = [
    "PublishConfig",
    "SelfPublishModel",
    "apublish",
    "build_config",
    "config_for_base",
    "flush",
    "get_backend",
    "get_config",
    "load_backend",
    "publish",
    "publish_instances",
    "register",
    "registered_models",
    "reset_backend",
    "revoke",
    "suppress",
    "unregister",
]

_backend: BaseBackend | None = None
_backend_lock = threading.Lock()


def load_backend(path: str | None = None, **options: Any) -> BaseBackend:
    """Build a new backend from an alias or dotted path (default: ``RTBRIDGE_BACKEND``).

    ``options`` default to ``RTBRIDGE_OPTIONS``. A hosted backend (``keeps_history``) gets
    the history store ``RTBRIDGE_HISTORY`` names.
    """
    cls = backend_class(path)
    cls.check_sdk()
    if path is None and not options:
        options = conf.backend_options()
    backend = cls(**options)
    if cls.keeps_history:
        backend.use_history(history.load_store())
    return backend


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
    if setting in ("RTBRIDGE_BACKEND", "RTBRIDGE_OPTIONS", "RTBRIDGE_HISTORY", "RTBRIDGE_REDIS"):
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


def revoke(user: Any, channel_name: str) -> None:
    """End ``user``'s live subscriptions to ``channel_name`` and refuse tokens issued before now.

    ``user`` is a user object or a user id. Works on the rtbridge server transports; hosted
    backends raise ``NotImplementedError`` (their grants expire by themselves).
    """
    channel_names.validate_channel(channel_name)
    user_id = user_id_of(user) if hasattr(user, "is_authenticated") else str(user)
    if user_id is None:
        raise ValueError("Cannot revoke for an anonymous user; give a user or a user id.")
    get_backend().revoke(user_id, channel_name)


# Model publishing ---------------------------------------------------------------------------
#
# The flow: post_init snapshots the tracked field values; post_save / post_delete / m2m_changed
# build validated messages right away (so mistakes surface at the save call) and hand them to
# transaction.on_commit, so a rolled-back transaction publishes nothing.

logger = logging.getLogger("rtbridge.publishers")

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


def register(model: type[models.Model], **options: Any) -> PublishConfig:
    """Publish ``model``'s changes without inheriting :class:`SelfPublishModel`.

    Takes the same options as the ``RTBridge`` inner class (``serializer``, ``fields``,
    ``channel``, ``filters``, ``object_channels``, ``collection_channel``, ``events``).
    """
    if model._meta.abstract:
        raise ImproperlyConfigured(f"{model.__name__} is abstract; register concrete models.")
    config = build_config(model, **options)
    add_config(config)
    uid = f"rtbridge:{model._meta.label}"
    signals.post_init.connect(_on_post_init, sender=model, dispatch_uid=uid)
    signals.post_save.connect(_on_post_save, sender=model, dispatch_uid=uid)
    signals.post_delete.connect(_on_post_delete, sender=model, dispatch_uid=uid)
    return config


def unregister(model: type[models.Model]) -> None:
    """Stop publishing ``model``'s changes."""
    remove_config(model)
    uid = f"rtbridge:{model._meta.label}"
    for signal in (signals.post_init, signals.post_save, signals.post_delete):
        signal.disconnect(sender=model, dispatch_uid=uid)


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
    config = get_config(sender)
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
        message = Message(channels, event, data, exclude=exclude)
        # The transport's rules: max_payload_bytes, and its own (e.g. PubNub counts the SDK's
        # ASCII-escaped JSON), so a change that would be refused at send time is a refetch
        # now, not a lost change later.
        backend.check_message(message)
        return message
    except PayloadTooLarge as exc:
        # Too big for this transport: tell clients to reload the object instead of losing it.
        logger.info(
            "rtbridge: %s %s of %s pk=%r is too large for the %s backend (%s); publishing %r "
            "instead",
            config.model._meta.label,
            event,
            config.base,
            pk,
            getattr(backend, "alias", type(backend).__name__),
            exc,
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
        except ServerNotRunning as exc:
            _no_server(exc, len(ready))
        except Exception:
            # The data is committed; raising here would turn a successful save into an error
            # page. Log loudly instead (direct rtbridge.publish() calls do raise).
            logger.exception(
                "rtbridge: publishing %d model change message(s) failed after commit",
                len(ready),
            )

    transaction.on_commit(send, using=using)


_warned_no_server = threading.Event()


def _no_server(exc: ServerNotRunning, count: int) -> None:
    # A shell or a worker saving with no dev server up is normal in development: say it
    # once per process, not a traceback per save.
    if _warned_no_server.is_set():
        logger.debug("rtbridge: %d model change message(s) not published: no server", count)
        return
    _warned_no_server.set()
    logger.warning(
        "rtbridge: model changes are saved but not published: %s (said once per process)", exc
    )


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
    config = get_config(sender)
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
    config = get_config(sender)
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
    if _suppressed.get() or not registered_models():
        return
    if action == "pre_clear" and reverse:
        # post_clear carries no pk_set; remember who is about to lose the relation.
        if get_config(model) is not None:
            name = _m2m_field_name(model, sender)
            if name is not None:
                affected = model._default_manager.using(using).filter(**{name: instance})
                instance.__dict__["_rtbridge_cleared"] = list(affected.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        config = get_config(type(instance))
        name = _m2m_field_name(type(instance), sender)
        if config is None or name is None or EVENT_UPDATED not in config.events:
            return
        targets: list[models.Model] = [instance]
    else:
        config = get_config(model)
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
    if event not in MODEL_EVENTS:
        raise ValueError(f"event={event!r} is not allowed; use 'created', 'updated' or 'deleted'.")
    messages: list[Message | None] = []
    database = using
    for instance in instances:
        config = get_config(type(instance))
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
