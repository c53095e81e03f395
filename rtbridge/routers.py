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
``{"error": {"code", "message", "fields"?}}`` (see docs/routers.md).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import models, router, transaction
from django.utils.module_loading import autodiscover_modules

from . import channel_names
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

    def dispatch(self, verb_name: str, args: Mapping[str, Any]) -> Reply:
        """Check permissions and run one verb; raise ``RouterError`` for anything wrong."""
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
        with sending_as(self.socket_id):
            result = method(**args)
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
        """Return one object the user may see, or raise 404 (``not_found``, never 403)."""
        try:
            return self.get_queryset().get(**lookup)
        except (models.ObjectDoesNotExist, ValueError, ValidationError):
            raise RouterError(
                404, "not_found", f"No {self.get_model()._meta.verbose_name} matches {lookup!r}."
            ) from None

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

    def _validation_error(self, exc: ValidationError) -> RouterError:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return RouterError(422, "invalid", "Some values are not valid.", fields=fields)

    def _lookup(self, args: Mapping[str, Any]) -> dict[str, Any]:
        key = "id" if "id" in args else self.lookup_field
        if key not in args:
            raise RouterError(400, "bad_request", "Give the object's 'id'.")
        return {self.lookup_field: args[key]}

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
        return Reply(self.serialize(self.get_object(**self._lookup(lookup))))

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
                raise self._validation_error(exc) from None
            obj.save()
            if not self.get_queryset().filter(pk=obj.pk).exists():
                # Written where this user may not see it: undo, and leak nothing.
                transaction.set_rollback(True)
                raise RouterError(403, "forbidden", "You may not create this object here.")
            self.created(obj)
            return Reply(self.serialize(obj), status=201)

    @verb
    def update(self, **data: Any) -> Reply:
        """Change the writable fields of the object ``data["id"]``; reply with what changed."""
        serializer = self.get_serializer()
        with self._atomic():
            obj = self.get_object(**self._lookup(data))
            before = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
            fields = {k: v for k, v in data.items() if k not in ("id", self.lookup_field)}
            try:
                self._apply(serializer, obj, fields, create=False)
                obj.full_clean()
            except ValidationError as exc:
                raise self._validation_error(exc) from None
            changed = [name for name, value in before.items() if getattr(obj, name) != value]
            if changed:
                obj.save(update_fields=changed)
                if not self.get_queryset().filter(pk=obj.pk).exists():
                    transaction.set_rollback(True)
                    raise RouterError(403, "forbidden", "You may not move this object there.")
            self.updated(obj, changed)
            if isinstance(serializer, ModelSerializer):
                return Reply(serializer.serialize_changed(obj, set(changed)))
            return Reply(self.serialize(obj))

    @verb
    def delete(self, **lookup: Any) -> Reply:
        """Delete the object ``id``."""
        with self._atomic():
            obj = self.get_object(**self._lookup(lookup))
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
            lookup = self._lookup(filters)
            if len(filters) > 1:
                raise RouterError(
                    400, "bad_request", "Subscribe to one object by 'id' alone, without filters."
                )
            obj = self.get_object(**lookup)
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
