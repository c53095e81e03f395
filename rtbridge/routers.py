"""Data routers: get_list / get_single / create / update / delete (+ custom verbs) for clients.

::

    # myapp/routers.py (auto-discovered)
    class TodoItemRouter(rtbridge.ModelRouter):
        route_name = "todo-item"
        serializer_class = TodoItemSerializer   # Meta.update_fields / create_fields: writable
        permission_classes = [rtbridge.LoginRequired]
        paginate_by = 50

        def get_queryset(self, **filters):       # the server decides what a client may see
            return TodoItem.objects.filter(todo_list__owner=self.user, **filters)

        @rtbridge.verb
        def clear_done(self, todo_list_id):      # a custom verb
            ...

The same call runs over HTTP (``rtbridge.views.data_view``) and over the rtbridge server's
socket, with the same replies: ``{"data": ..., "page": {...}}`` or
``{"error": {"code", "message", "fields"?}}`` (see docs/routers.md). A router with an attribute
rtbridge does not use (SwampDragon's ``get_query_set``...) or a hook it cannot call fails
``manage.py check`` (:meth:`BaseRouter.check`) and refuses every call until fixed.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core import checks
from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    PermissionDenied,
    ValidationError,
)
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import models, router, transaction
from django.http import Http404
from django.utils.module_loading import autodiscover_modules

from . import channel_names, conf
from .auth import authorize
from .exceptions import Refused, RouterError
from .middleware import sending_as
from .model_config import get_config
from .publishers import get_backend
from .serializers import ModelSerializer, as_serializer

__all__ = [
    "BaseRouter",
    "LoginRequired",
    "ModelRouter",
    "Permission",
    "Reply",
    "RouterError",
    "autodiscover",
    "call",
    "get_router",
    "register",
    "routes",
    "unregister",
    "verb",
]

logger = logging.getLogger("rtbridge.routers")

#: The verbs every ModelRouter offers.
STANDARD_VERBS = ("get_list", "get_single", "create", "update", "delete", "subscribe")
#: Largest page a client may ask for, whatever ``page_size`` it sends.
DEFAULT_MAX_PAGE_SIZE = 100

#: Router attributes of SwampDragon (and of DRF views) that rtbridge never reads: what to do.
FOREIGN_ATTRIBUTES = {
    "get_query_set": (
        "Rename it get_queryset(self, **filters). rtbridge calls get_queryset with the filters "
        "the client sent, already checked against filter_fields (SwampDragon passed the "
        "client's raw arguments, e.g. list_id), and with no filters to decide which objects the "
        "user may read or write, so it must work without them"
    ),
    "get_subscription_contexts": (
        "Clients subscribe with the filters the model declares (RTBridge.filters), checked like "
        "get_list's; restrict who may follow them with RTBridge.authorize (private channels) "
        "and what they load with get_queryset"
    ),
    "get_subscription_channels": (
        "Declare the channel with @rtbridge.channel(...) and follow it from the page with "
        "rt.channel(name) or rt.private(name)"
    ),
    "include_related": (
        "Nest related serializers in the serializer (todo_list = TodoListSerializer()); related "
        "models publish on their own channels"
    ),
    "serializer": "Set serializer_class",
    "get_client_context": (
        "Return rtbridge.routers.Reply(data, {name: value}) from the verb: its extra keys reach "
        "the client"
    ),
    "send": "Return the data from the verb method",
    "send_list": "Return the list from get_list, or override get_queryset",
    "send_single": "Return the object from get_single, or override get_object",
    "send_error": "Raise rtbridge.routers.RouterError(status, code, message, fields=...)",
    "send_login_required": "Use permission_classes = [rtbridge.LoginRequired]",
    "on_error": (
        "Errors reach the client as {error: {code, message, fields}}; raise RouterError for "
        "your own"
    ),
    "unsubscribe": (
        "Clients unsubscribe by themselves (sub.unsubscribe()); there is no unsubscribe verb"
    ),
    "queryset": "Override get_queryset(self, **filters) (a DRF view's queryset attribute)",
    "filter_backends": (
        "Declare filters on the model (RTBridge.filters) or in filter_fields, and narrow rows in "
        "get_queryset"
    ),
    "pagination_class": "Use paginate_by and max_page_size",
}


@dataclass
class Reply:
    """A successful call: ``data`` plus optional extra keys (``page``, ``channels``…)."""

    data: Any
    extra: dict[str, Any] = field(default_factory=dict)
    status: int = 200

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON reply body."""
        return {"data": self.data, **self.extra}


def verb(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a router method as a custom verb clients may call with keyword arguments."""
    func._rtbridge_verb = True  # type: ignore[attr-defined]
    return func


# Permissions -----------------------------------------------------------------------------------


class Permission:
    """Decide whether the router's user may call a verb; subclass and override ``has_permission``.

    ``verbs`` limits the check to some verbs (default: all). A refusal raises ``RouterError``
    with ``code`` and ``message`` (403 ``forbidden`` by default).
    """

    status = 403
    code = "forbidden"
    message = "You may not do this."

    def __init__(self, verbs: Iterable[str] | None = None) -> None:
        self.verbs = None if verbs is None else frozenset(verbs)

    def has_permission(self, router: BaseRouter, verb_name: str, args: Mapping[str, Any]) -> bool:
        """Return ``True`` to allow the call."""
        return True

    def check(self, router: BaseRouter, verb_name: str, args: Mapping[str, Any]) -> None:
        """Raise ``RouterError`` unless the call is allowed."""
        if self.verbs is not None and verb_name not in self.verbs:
            return
        if not self.has_permission(router, verb_name, args):
            raise RouterError(self.status, self.code, self.message)


class LoginRequired(Permission):
    """Allow authenticated users only (SwampDragon's ``LoginRequired``)."""

    status = 401
    code = "login_required"
    message = "Log in to do this."

    def has_permission(self, router: BaseRouter, verb_name: str, args: Mapping[str, Any]) -> bool:
        return bool(getattr(router.user, "is_authenticated", False))


# Routers ---------------------------------------------------------------------------------------


class BaseRouter:
    """A named set of verbs clients may call. Subclass and set ``route_name``."""

    route_name: ClassVar[str] = ""
    permission_classes: ClassVar[list[Any]] = []
    #: Verbs of this router clients may not call.
    exclude_verbs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, user: Any = None, request: Any = None, socket_id: str | None = None):
        self.user = user
        self.request = request
        self.socket_id = socket_id

    @classmethod
    def verbs(cls) -> list[str]:
        """Return every verb clients may call on this router."""
        names = [
            name for name in dir(cls) if getattr(getattr(cls, name, None), "_rtbridge_verb", False)
        ]
        return sorted(set(names) - set(cls.exclude_verbs))

    def get_permissions(self) -> list[Permission]:
        """Return permission instances (classes in ``permission_classes`` are instantiated)."""
        return [p() if isinstance(p, type) else p for p in self.permission_classes]

    @classmethod
    def check(cls, **kwargs: Any) -> list[checks.CheckMessage]:
        """Return this router's configuration errors, as ``manage.py check`` reports them.

        ``rtbridge.E040``: an attribute rtbridge never reads (SwampDragon's ``get_query_set``,
        ``valid_verbs``..., DRF's ``queryset``, a misspelt option); ``E041``: a hook rtbridge
        cannot call as documented; ``E042``: a permission that is not an
        ``rtbridge.Permission``; ``E043``: a standard verb overridden without
        ``@rtbridge.verb``; ``E044``: a missing or broken model or serializer (``ModelRouter``).
        A router with any of them refuses every call (500 ``misconfigured``).
        """
        return [*_check_attributes(cls), *_check_permissions(cls), *_check_verb_overrides(cls)]

    def dispatch(self, verb_name: str, args: Mapping[str, Any]) -> Reply:
        """Check permissions and run one verb; raise ``RouterError`` for anything wrong.

        Django's own exceptions raised by the verb become replies, as in DRF:
        ``ValidationError`` 422 ``invalid`` (with ``fields``), ``PermissionDenied`` 403
        ``forbidden``, ``Http404`` 404 ``not_found``, each with its message.
        """
        _refuse_if_misconfigured(type(self))
        if verb_name not in self.verbs():
            raise RouterError(
                404,
                "unknown_verb",
                f"Route {self.route_name!r} has no verb {verb_name!r}; verbs: "
                f"{', '.join(self.verbs())}.",
            )
        if not isinstance(args, Mapping):
            raise RouterError(400, "bad_request", "args must be a JSON object.")
        for permission in self.get_permissions():
            permission.check(self, verb_name, args)
        method = getattr(self, verb_name)
        try:
            inspect.signature(method).bind(**args)
        except TypeError as exc:
            raise RouterError(400, "bad_request", f"{verb_name}: {exc}") from None
        try:
            with sending_as(self.socket_id):
                result = method(**args)
        except ValidationError as exc:
            raise invalid(exc) from None
        except PermissionDenied as exc:
            raise RouterError(403, "forbidden", str(exc) or Permission.message) from None
        except Http404 as exc:
            raise RouterError(404, "not_found", str(exc) or "Not found.") from None
        return result if isinstance(result, Reply) else Reply(result)


class ModelRouter(BaseRouter):
    """Serve one model: the five standard verbs, ``subscribe``, and any custom verbs."""

    model: ClassVar[type[models.Model] | None] = None
    serializer_class: ClassVar[Any] = None
    #: Fields clients may filter on; default: every field of the model's publishing filters.
    filter_fields: ClassVar[tuple[str, ...] | None] = None
    paginate_by: ClassVar[int | None] = None
    max_page_size: ClassVar[int] = DEFAULT_MAX_PAGE_SIZE
    ordering: ClassVar[tuple[str, ...] | None] = None
    lookup_field: ClassVar[str] = "pk"

    # Hooks to override -------------------------------------------------------------------

    def get_queryset(self, **filters: Any) -> models.QuerySet[Any]:
        """Return what this user may see, narrowed by ``filters``. Override this."""
        return self.get_model()._default_manager.filter(**filters)

    def get_object(self, **lookup: Any) -> models.Model:
        """Return the object the client named, one the user may see.

        Called as SwampDragon called it, with the client's identifying argument as sent:
        ``get_object(id=5)`` (or ``get_object(<lookup_field>=...)``). The default looks the
        value up by ``lookup_field`` (default: the primary key) in ``get_queryset()``. Raising
        ``ObjectDoesNotExist`` (as ``Model.objects.get()`` does) answers 404 ``not_found``,
        never 403, so existence does not leak.
        """
        value = lookup["id"] if "id" in lookup else lookup[self.lookup_field]
        return self.get_queryset().get(**{self.lookup_field: value})

    def get_initial(self, verb_name: str) -> dict[str, Any]:
        """Return server-side values set on create (e.g. ``{"owner": self.user}``)."""
        return {}

    def created(self, obj: models.Model) -> None:
        """Run after a create has been saved (inside the verb's transaction)."""

    def updated(self, obj: models.Model, changed: list[str]) -> None:
        """Run after an update has been saved (inside the verb's transaction)."""

    def deleted(self, obj: models.Model) -> None:
        """Run after a delete (inside the verb's transaction)."""

    # Helpers -------------------------------------------------------------------------------

    @classmethod
    def get_model(cls) -> type[models.Model]:
        """Return the router's model (``model`` or the serializer's ``Meta.model``)."""
        if cls.model is not None:
            return cls.model
        serializer = cls.get_serializer()
        if isinstance(serializer, ModelSerializer):
            return serializer.model
        meta = getattr(serializer, "Meta", None)
        if meta is not None and getattr(meta, "model", None) is not None:
            return meta.model
        raise ImproperlyConfigured(f"{cls.__name__} needs `model` or a serializer with a model.")

    @classmethod
    def get_serializer(cls) -> Any:
        """Return the serializer: a ModelSerializer instance or a DRF serializer class."""
        value = cls.serializer_class
        if value is None:
            raise ImproperlyConfigured(f"{cls.__name__}.serializer_class is not set.")
        if isinstance(value, type) and issubclass(value, ModelSerializer):
            return value()
        as_serializer(value, owner=f"{cls.__name__}.serializer_class")
        return value

    def serialize(self, obj: models.Model) -> dict[str, Any]:
        """Return ``obj`` as the router's serializer publishes it."""
        return as_serializer(self.get_serializer())(obj)

    @classmethod
    def allowed_filters(cls) -> tuple[str, ...]:
        """Return the field names clients may filter on (``filter_fields`` or the model's)."""
        if cls.filter_fields is not None:
            return tuple(cls.filter_fields)
        config = get_config(cls.get_model())
        if config is None:
            return ()
        return tuple(sorted({name for group in config.filters for name in group}))

    def clean_filters(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        """Check filter keys against ``allowed_filters`` and convert values; 400 otherwise."""
        allowed = self.allowed_filters()
        model = self.get_model()
        cleaned: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, value in filters.items():
            try:
                canonical = channel_names.normalize_filter_key(key)
            except channel_names.InvalidChannelName as exc:
                errors[key] = [str(exc)]
                continue
            if canonical not in allowed:
                errors[key] = [
                    f"Filtering on {key!r} is not allowed; allowed: {', '.join(allowed) or 'none'}."
                ]
                continue
            field_obj = next(
                (f for f in model._meta.concrete_fields if f.attname == canonical), None
            )
            try:
                cleaned[canonical] = field_obj.to_python(value) if field_obj is not None else value
            except ValidationError as exc:
                errors[key] = list(exc.messages)
        if errors:
            raise RouterError(400, "invalid_filter", "Some filters are not allowed.", fields=errors)
        return cleaned

    def _ordered(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        if self.ordering is not None:
            return queryset.order_by(*self.ordering)
        if not queryset.ordered:
            return queryset.order_by("pk")  # pagination needs a stable order
        return queryset

    def _atomic(self) -> Any:
        return transaction.atomic(using=router.db_for_write(self.get_model()))

    def _lookup(self, args: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("id", self.lookup_field):
            if key in args:
                return {key: args[key]}
        raise RouterError(400, "bad_request", "Give the object's 'id'.")

    def _find(self, args: Mapping[str, Any]) -> models.Model:
        lookup = self._lookup(args)
        try:
            return self.get_object(**lookup)
        except (models.ObjectDoesNotExist, ValueError, ValidationError):
            raise RouterError(
                404, "not_found", f"No {self.get_model()._meta.verbose_name} matches {lookup!r}."
            ) from None

    @classmethod
    def check(cls, **kwargs: Any) -> list[checks.CheckMessage]:
        """Return this router's configuration errors; see :meth:`BaseRouter.check`."""
        return [*super().check(**kwargs), *_check_hooks(cls), *_check_model(cls)]

    # The standard verbs ------------------------------------------------------------------------

    @verb
    def get_list(self, page: Any = None, page_size: Any = None, **filters: Any) -> Reply:
        """Return the objects matching ``filters``, one page at a time when paginated."""
        queryset = self._ordered(self.get_queryset(**self.clean_filters(filters)))
        size = self.paginate_by
        if page_size is not None:
            try:
                size = int(page_size)
            except (TypeError, ValueError):
                raise RouterError(
                    400, "bad_request", f"page_size={page_size!r} is not a number."
                ) from None
            if size < 1:
                raise RouterError(400, "bad_request", "page_size must be at least 1.")
        if size is None:
            objects = list(queryset[: self.max_page_size + 1])
            if len(objects) > self.max_page_size:
                size = self.max_page_size  # never an unbounded reply: paginate anyway
            else:
                return Reply([self.serialize(o) for o in objects])
        size = min(size, self.max_page_size)
        paginator = Paginator(queryset, size)
        try:
            current = paginator.page(page or 1)
        except EmptyPage as exc:
            raise RouterError(404, "page_out_of_range", f"page={page!r}: {exc}") from None
        except PageNotAnInteger:
            raise RouterError(400, "bad_request", f"page={page!r} is not a page number.") from None
        return Reply(
            [self.serialize(o) for o in current.object_list],
            {
                "page": {
                    "number": current.number,
                    "size": size,
                    "count": paginator.count,
                    "num_pages": paginator.num_pages,
                    "has_next": current.has_next(),
                    "has_previous": current.has_previous(),
                }
            },
        )

    @verb
    def get_single(self, **lookup: Any) -> Reply:
        """Return one object by ``id`` (404 if it does not exist or the user may not see it)."""
        return Reply(self.serialize(self._find(lookup)))

    @verb
    def create(self, **data: Any) -> Reply:
        """Create an object from the writable fields in ``data`` (``create_fields``)."""
        serializer = self.get_serializer()
        model = self.get_model()
        with self._atomic():
            obj = model(**self.get_initial("create"))
            try:
                self._apply(serializer, obj, data, create=True)
                obj.full_clean()
            except ValidationError as exc:
                raise invalid(exc) from None
            obj.save()
            if not self.get_queryset().filter(pk=obj.pk).exists():
                # Written where this user may not see it: undo, and leak nothing.
                transaction.set_rollback(True)
                raise RouterError(403, "forbidden", "You may not create this object here.")
            self.created(obj)
            return Reply(self.serialize(obj), _read_only(serializer, data, create=True), 201)

    @verb
    def update(self, **data: Any) -> Reply:
        """Change the writable fields of the object ``data["id"]``; reply with what changed."""
        serializer = self.get_serializer()
        with self._atomic():
            obj = self._find(data)
            before = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
            fields = {k: v for k, v in data.items() if k not in ("id", self.lookup_field)}
            try:
                self._apply(serializer, obj, fields, create=False)
                obj.full_clean()
            except ValidationError as exc:
                raise invalid(exc) from None
            changed = [name for name, value in before.items() if getattr(obj, name) != value]
            if changed:
                obj.save(update_fields=changed)
                if not self.get_queryset().filter(pk=obj.pk).exists():
                    transaction.set_rollback(True)
                    raise RouterError(403, "forbidden", "You may not move this object there.")
            self.updated(obj, changed)
            read_only = _read_only(serializer, fields, create=False)
            if isinstance(serializer, ModelSerializer):
                return Reply(serializer.serialize_changed(obj, set(changed)), read_only)
            return Reply(self.serialize(obj), read_only)

    @verb
    def delete(self, **lookup: Any) -> Reply:
        """Delete the object ``id``."""
        with self._atomic():
            obj = self._find(lookup)
            pk = obj.pk
            obj.delete()
            self.deleted(obj)
        return Reply({"id": pk})

    @verb
    def subscribe(self, **filters: Any) -> Reply:
        """Return the channel for ``filters`` (or for one object, ``id``) and its data.

        Reply: ``{"data": ..., "channels": [name], "auth": {name: answer}?, "page"?}``. With
        filters (checked like ``get_list``; they must form one of the model's filter groups)
        the channel is the filter channel and ``data`` the list; with ``id`` it is the object
        channel and ``data`` the object (404 if the user may not see it). For a private
        model the reply carries the auth endpoint's answer for the channel (when a socket id
        was sent). ``include_data=false`` leaves ``data`` null: race-free clients subscribe
        first, then load, then apply the events that arrived meanwhile.
        """
        page = filters.pop("page", None)
        page_size = filters.pop("page_size", None)
        include_data = filters.pop("include_data", True) not in (False, "false", "0")
        config = get_config(self.get_model())
        if config is None:
            raise RouterError(
                400,
                "not_published",
                f"{self.get_model()._meta.label} does not publish its changes; add "
                "rtbridge.SelfPublishModel to it.",
            )
        obj: models.Model | None = None
        if "id" in filters or self.lookup_field in filters:
            if len(filters) > 1:
                raise RouterError(
                    400, "bad_request", "Subscribe to one object by 'id' alone, without filters."
                )
            obj = self._find(filters)
            name = channel_names.object_channel(config.base, obj.pk)
        else:
            cleaned = self.clean_filters(filters)
            if cleaned and tuple(sorted(cleaned)) not in config.filters:
                groups = ", ".join("+".join(g) for g in config.filters) or "none"
                raise RouterError(
                    400,
                    "invalid_filter",
                    f"There is no channel for the filter {sorted(cleaned)}; the model "
                    f"publishes filters: {groups}.",
                )
            name = channel_names.filter_channel(config.base, cleaned)
        extra: dict[str, Any] = {"channels": [name]}
        if channel_names.is_protected(name):
            try:
                grant = authorize(self.user, name)
            except Refused as exc:
                raise RouterError(403, exc.code, str(exc)) from None
            if self.socket_id:
                extra["auth"] = {name: get_backend().auth_response(self.socket_id, grant)}
        if not include_data:
            return Reply(None, extra)
        if obj is not None:
            return Reply(self.serialize(obj), extra)
        initial = self.get_list(page=page, page_size=page_size, **cleaned)
        extra.update(initial.extra)
        return Reply(initial.data, extra)

    def _apply(
        self, serializer: Any, obj: models.Model, data: Mapping[str, Any], *, create: bool
    ) -> None:
        if isinstance(serializer, ModelSerializer):
            serializer.apply(
                obj, data, fields=serializer.create_fields if create else serializer.update_fields
            )
            return
        # A DRF serializer validates and saves by itself.
        drf = serializer(instance=None if create else obj, data=dict(data), partial=not create)
        if not drf.is_valid():
            raise ValidationError({k: [str(m) for m in v] for k, v in drf.errors.items()})
        for key, value in drf.validated_data.items():
            try:
                obj._meta.get_field(key)
            except FieldDoesNotExist:
                continue
            setattr(obj, key, value)


def invalid(exc: ValidationError) -> RouterError:
    """Return the 422 ``invalid`` error for ``exc``: every field named, in ``fields`` and the
    message (which is what a page shows)."""
    fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    summary = "; ".join(
        " ".join(messages) if name == "__all__" else f"{name}: {' '.join(messages)}"
        for name, messages in fields.items()
    )
    return RouterError(422, "invalid", f"Some values are not valid: {summary}", fields=fields)


def _read_only(serializer: Any, data: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    """Return ``{"read_only": [keys]}`` for the sent keys a write skipped, or ``{}``."""
    if not isinstance(serializer, ModelSerializer):
        return {}  # DRF applies its own rules
    fields = serializer.create_fields if create else serializer.update_fields
    skipped = serializer.read_only_keys(data, fields=fields)
    return {"read_only": skipped} if skipped else {}


# Checks -------------------------------------------------------------------------------------

_RTBRIDGE_CLASSES = frozenset({BaseRouter, ModelRouter, object})
#: The options a router class may set (the non-callable attributes of ModelRouter).
_ROUTER_OPTIONS = tuple(
    name
    for name in dir(ModelRouter)
    if not name.startswith("_") and not callable(getattr(ModelRouter, name))
)
#: Problems found per router class (classes do not change after import), for dispatch().
_configuration_errors: weakref.WeakKeyDictionary[type[BaseRouter], list[checks.CheckMessage]] = (
    weakref.WeakKeyDictionary()
)


def _error(cls: type, code: str, msg: str, hint: str) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=cls, id=f"rtbridge.{code}")


def _defined_by_user(cls: type[BaseRouter]) -> dict[str, Any]:
    """Return the attributes the router's own classes (not rtbridge's) define, nearest first."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass in _RTBRIDGE_CLASSES:
            continue
        for name, value in vars(klass).items():
            found.setdefault(name, value)
    return found


def _valid_verbs_hint(cls: type[BaseRouter], listed: Any) -> str:
    offered = {name for name in dir(cls) if getattr(getattr(cls, name), "_rtbridge_verb", False)}
    wanted = set(listed) if isinstance(listed, (list, tuple, set, frozenset)) else set()
    advice = []
    hidden = sorted(offered - wanted)
    if hidden:
        advice.append(f"exclude_verbs = {tuple(hidden)!r} removes the verbs it left out")
    for name in sorted(wanted - offered):
        if callable(getattr(cls, name, None)):
            advice.append(f"mark {name}() with @rtbridge.verb")
        else:
            advice.append(f"there is no method {name}()")
    return "rtbridge's verbs are the standard ones plus methods marked @rtbridge.verb: " + (
        "; ".join(advice) or "remove valid_verbs"
    )


def _check_attributes(cls: type[BaseRouter]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, value in _defined_by_user(cls).items():
        if name in FOREIGN_ATTRIBUTES or name == "valid_verbs":
            hint = (
                _valid_verbs_hint(cls, value) if name == "valid_verbs" else FOREIGN_ATTRIBUTES[name]
            )
            errors.append(
                _error(
                    cls,
                    "E040",
                    f"{cls.__name__}.{name} is SwampDragon's (or DRF's); rtbridge never reads "
                    "it, so the router refuses to serve until it is replaced.",
                    hint + ".",
                )
            )
        elif not name.startswith("_") and name not in _ROUTER_OPTIONS and not callable(value):
            close = difflib.get_close_matches(name, _ROUTER_OPTIONS, n=1, cutoff=0.8)
            if close and not isinstance(value, (classmethod, staticmethod, property)):
                errors.append(
                    _error(
                        cls,
                        "E040",
                        f"{cls.__name__}.{name} is not a router option; rtbridge never reads it.",
                        f"Did you mean {close[0]!r}?",
                    )
                )
    return errors


def _check_permissions(cls: type[BaseRouter]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for permission in cls.permission_classes:
        kind = permission if isinstance(permission, type) else type(permission)
        if issubclass(kind, Permission):
            continue
        if hasattr(kind, "test_permission"):
            hint = (
                "Subclass rtbridge.Permission and rename SwampDragon's test_permission(handler, "
                "verb, **kwargs) to has_permission(router, verb, args); a refusal answers the "
                "class's status, code and message (permission_failed is not called)."
            )
        elif hasattr(kind, "has_permission"):
            hint = (
                "Subclass rtbridge.Permission: its has_permission(router, verb, args) is not DRF's "
                "has_permission(request, view)."
            )
        else:
            hint = "Give rtbridge.Permission subclasses or instances (rtbridge.LoginRequired...)."
        errors.append(
            _error(
                cls,
                "E042",
                f"{cls.__name__}.permission_classes holds {permission!r}, which is not an "
                "rtbridge.Permission.",
                hint,
            )
        )
    return errors


def _check_verb_overrides(cls: type[BaseRouter]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, value in _defined_by_user(cls).items():
        overrides_a_verb = any(
            getattr(getattr(base, name, None), "_rtbridge_verb", False)
            for base in (BaseRouter, ModelRouter)
            if issubclass(cls, base)
        )
        if overrides_a_verb and not getattr(value, "_rtbridge_verb", False):
            errors.append(
                _error(
                    cls,
                    "E043",
                    f"{cls.__name__}.{name}() overrides a verb without @rtbridge.verb, so "
                    f"clients cannot call {name} any more.",
                    f"Decorate it with @rtbridge.verb, or remove the verb with "
                    f"exclude_verbs = ({name!r},).",
                )
            )
    return errors


#: ModelRouter hooks: how rtbridge calls each one (positional, keyword) and the advice.
_HOOK_CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any], str]] = {
    "get_object": (
        (),
        {"id": 1},
        "def get_object(self, **lookup): rtbridge passes the client's id=... (SwampDragon's "
        "get_object(self, **kwargs) with kwargs['id'] works as it is)",
    ),
    "get_queryset": (
        (),
        {},
        "def get_queryset(self, **filters): rtbridge calls it with the client's checked filters, "
        "and with none",
    ),
    "get_initial": (
        ("create",),
        {},
        "def get_initial(self, verb_name): rtbridge calls it for create only, without the "
        "client's data (SwampDragon also called it for update, with the client's arguments); "
        "set values on update in updated(obj, changed)",
    ),
    "created": ((None,), {}, "def created(self, obj)"),
    "updated": (
        (None, []),
        {},
        "def updated(self, obj, changed): changed lists the attributes that changed "
        "(SwampDragon passed updated_fields= and past_state=)",
    ),
    "deleted": (
        (None,),
        {},
        "def deleted(self, obj): rtbridge calls it after the delete (SwampDragon passed obj_id "
        "too, and called it before)",
    ),
}


def _check_hooks(cls: type[ModelRouter]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    own = _defined_by_user(cls)
    for name, (args, kwargs, advice) in _HOOK_CALLS.items():
        if name not in own or not callable(own[name]):
            continue
        signature = inspect.signature(own[name])
        params = signature.parameters.values()
        try:
            signature.bind(None, *args, **kwargs)  # None stands for self
            if name == "get_queryset":
                signature.bind(None, **dict.fromkeys(_filters_of(cls), 1))
            # SwampDragon's get_initial(self, verb, **kwargs) expected the client's data.
            if name == "get_initial" and any(
                p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params
            ):
                raise TypeError("takes the client's data")
        except (TypeError, ValueError) as exc:
            errors.append(
                _error(
                    cls,
                    "E041",
                    f"{cls.__name__}.{name}{signature} cannot be called the way rtbridge calls "
                    f"it ({exc}).",
                    f"Write {advice}.",
                )
            )
    return errors


def _filters_of(cls: type[ModelRouter]) -> tuple[str, ...]:
    try:
        return cls.allowed_filters()
    except ImproperlyConfigured:
        return ()  # reported by _check_model


def _check_model(cls: type[ModelRouter]) -> list[checks.CheckMessage]:
    try:
        cls.get_model()
        serializer = cls.get_serializer()
    except ImproperlyConfigured as exc:
        return [_error(cls, "E044", str(exc), "Set model and serializer_class on the router.")]
    if not isinstance(serializer, ModelSerializer):
        return []
    errors = type(serializer).check()
    if errors:
        return errors
    try:
        serializer.field_sources()  # resolves the model and every named field
    except ImproperlyConfigured as exc:
        return [_error(cls, "E044", str(exc), "Fix the router's serializer_class.")]
    return []


def _refuse_if_misconfigured(cls: type[BaseRouter]) -> None:
    errors = _configuration_errors.get(cls)
    if errors is None:
        errors = [e for e in cls.check() if e.is_serious()]
        _configuration_errors[cls] = errors
        for error in errors:
            logger.error(
                "rtbridge: route %r refuses every call: %s %s (%s)",
                cls.route_name,
                error.msg,
                error.hint,
                error.id,
            )
    if errors:
        ids = ", ".join(sorted({str(e.id) for e in errors}))
        detail = f" {errors[0].msg} {errors[0].hint}" if conf.debug_enabled() else ""
        raise RouterError(
            500,
            "misconfigured",
            f"Route {cls.route_name!r} is misconfigured ({ids}); manage.py check says how to "
            f"fix it.{detail}",
        )


# Registry ------------------------------------------------------------------------------------

_routes: dict[str, type[BaseRouter]] = {}


def register(router_class: type[BaseRouter]) -> type[BaseRouter]:
    """Register a router under its ``route_name`` (usable as a class decorator)."""
    name = router_class.route_name
    if not name or not isinstance(name, str):
        raise ImproperlyConfigured(
            f"{router_class.__name__}.route_name must be a non-empty string."
        )
    existing = _routes.get(name)
    if existing is not None and existing is not router_class:
        raise ImproperlyConfigured(
            f"Route {name!r} is already served by {existing.__module__}.{existing.__qualname__}."
        )
    _routes[name] = router_class
    return router_class


def unregister(route_name: str) -> None:
    """Remove a route."""
    _routes.pop(route_name, None)


def get_router(route_name: str) -> type[BaseRouter]:
    """Return the router class of ``route_name`` or raise ``RouterError`` 404."""
    try:
        return _routes[route_name]
    except KeyError:
        raise RouterError(
            404,
            "unknown_route",
            f"There is no route {route_name!r}; routes: {', '.join(sorted(_routes)) or 'none'}.",
        ) from None


def routes() -> dict[str, type[BaseRouter]]:
    """Return every registered route."""
    return dict(_routes)


def autodiscover() -> None:
    """Import ``<app>.routers`` of every installed app and register the routers defined there.

    A router class defined in a module named ``routers`` with a ``route_name`` registers
    itself; routers elsewhere are registered with :func:`register`.
    """
    autodiscover_modules("routers")
    for router_class in _all_subclasses(BaseRouter):
        if (
            router_class.route_name
            and router_class.__module__.rpartition(".")[2] == "routers"
            and router_class.route_name not in _routes
        ):
            register(router_class)


def _all_subclasses(cls: type[BaseRouter]) -> list[type[BaseRouter]]:
    out: list[type[BaseRouter]] = []
    sub: type[BaseRouter]
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def call(
    route_name: str,
    verb_name: str,
    args: Mapping[str, Any] | None = None,
    *,
    user: Any = None,
    request: Any = None,
    socket_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Run one verb and return ``(status, JSON body)`` — the one entry point of HTTP and socket."""
    try:
        router_class = get_router(route_name)
        instance = router_class(user=user, request=request, socket_id=socket_id)
        reply = instance.dispatch(verb_name, args or {})
        return reply.status, reply.as_dict()
    except RouterError as exc:
        return exc.status, exc.as_dict()
    except Refused as exc:
        return 403, RouterError(403, exc.code, str(exc)).as_dict()
