"""Model → JSON-ready dict: fields, computed fields, FK ids, nested serializers, write whitelist.

::

    class TodoItemSerializer(rtbridge.ModelSerializer):
        todo_list = TodoListSerializer()    # nested (else the FK is published as todo_list_id)

        class Meta:
            model = TodoItem
            fields = ["text", "done", "todo_list_id"]   # default "__all__"
            update_fields = ["text", "done"]            # what clients may change (routers)
            create_fields = ["todo_list_id", "text"]    # what clients may set on create

        def serialize_label(self, obj):                  # computed field "label"
            return obj.text.upper()

Every payload carries ``id`` (the primary key). Foreign keys appear as ``<name>_id``; many-to-many
fields as a list of primary keys under the field's name. DRF serializers are accepted wherever
an rtbridge serializer is (see :func:`as_serializer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import import_string

__all__ = ["ModelSerializer", "as_serializer"]

MAX_DEPTH = 3


def _resolve_model(value: Any, owner: str) -> type[models.Model]:
    if isinstance(value, str):
        try:
            return apps.get_model(value)
        except (LookupError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"{owner}.Meta.model = {value!r} does not name an installed model "
                "('app_label.ModelName')."
            ) from exc
    if isinstance(value, type) and issubclass(value, models.Model):
        return value
    raise ImproperlyConfigured(
        f"{owner}.Meta.model must be a model class or 'app_label.ModelName', not {value!r}."
    )


def _attribute_getter(attname: str) -> Callable[[models.Model, int], Any]:
    return lambda obj, depth: getattr(obj, attname)


def _computed_getter(method: Callable[[models.Model], Any]) -> Callable[[models.Model, int], Any]:
    return lambda obj, depth: method(obj)


class ModelSerializer:
    """Turn a model instance into a JSON-ready dict, and check client writes against it."""

    class Meta:
        model: Any = None
        fields: Any = "__all__"
        exclude: Iterable[str] = ()
        update_fields: Iterable[str] = ()
        create_fields: Iterable[str] | None = None

    _related: ClassVar[dict[str, ModelSerializer]]
    _computed: ClassVar[dict[str, str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        related: dict[str, ModelSerializer] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, type) and issubclass(value, ModelSerializer):
                    value = value()
                if isinstance(value, ModelSerializer):
                    related[name] = value
        cls._related = related
        cls._computed = {
            name[len("serialize_") :]: name
            for name in dir(cls)
            if name.startswith("serialize_")
            and name not in vars(ModelSerializer)
            and callable(getattr(cls, name))
        }
        meta = cls.__dict__.get("Meta")
        if meta is not None:
            fields = getattr(meta, "fields", "__all__")
            # SwampDragon's classic bug: ("x") is a string, not a tuple.
            if isinstance(fields, str) and fields != "__all__":
                raise ImproperlyConfigured(
                    f"{cls.__name__}.Meta.fields = {fields!r} is a string; give a list such as "
                    f"[{fields!r}] or '__all__'."
                )
            for option in ("exclude", "update_fields", "create_fields"):
                value = getattr(meta, option, ())
                if isinstance(value, str):
                    raise ImproperlyConfigured(
                        f"{cls.__name__}.Meta.{option} = {value!r} is a string; give a list "
                        f"such as [{value!r}]."
                    )

    def __init__(self) -> None:
        self._plan: list[tuple[str, Callable[[models.Model, int], Any]]] | None = None
        self._attnames: dict[str, str] = {}

    # Introspection ---------------------------------------------------------------------------

    @property
    def model(self) -> type[models.Model]:
        """Return the model class named in ``Meta.model``."""
        meta = getattr(type(self), "Meta", None)
        value = getattr(meta, "model", None)
        if value is None:
            raise ImproperlyConfigured(f"{type(self).__name__}.Meta.model is not set.")
        return _resolve_model(value, type(self).__name__)

    @property
    def update_fields(self) -> tuple[str, ...]:
        """Return the fields clients may write (``Meta.update_fields``)."""
        return tuple(getattr(self.Meta, "update_fields", ()))

    @property
    def create_fields(self) -> tuple[str, ...]:
        """Return the fields clients may set on create (``Meta.create_fields``, default
        ``update_fields``)."""
        fields = getattr(self.Meta, "create_fields", None)
        return self.update_fields if fields is None else tuple(fields)

    def _build_plan(self) -> list[tuple[str, Callable[[models.Model, int], Any]]]:
        model = self.model
        opts = model._meta
        meta = self.Meta
        wanted = getattr(meta, "fields", "__all__")
        exclude = set(getattr(meta, "exclude", ()))
        plan: list[tuple[str, Callable[[models.Model, int], Any]]] = []
        pk_name = opts.pk.attname if opts.pk is not None else "id"
        plan.append(("id", lambda obj, depth: obj.pk))
        self._attnames = {"id": pk_name}

        def add_field(field: Any, key: str | None = None) -> None:
            if field.many_to_many:
                name = field.name

                def m2m(obj: models.Model, depth: int, name: str = name) -> Any:
                    if obj.pk is None:
                        return []
                    related = self._related.get(name)
                    manager = getattr(obj, name)
                    if related is not None and depth < MAX_DEPTH:
                        return [related.serialize(o, depth + 1) for o in manager.all()]
                    return list(manager.values_list("pk", flat=True))

                plan.append((name, m2m))
                self._attnames[name] = name
            elif field.is_relation and field.name in self._related:
                related = self._related[field.name]
                name = field.name

                def nested(obj: models.Model, depth: int, name: str = name) -> Any:
                    value = getattr(obj, name)
                    if value is None or depth >= MAX_DEPTH:
                        return None if value is None else value.pk
                    return related.serialize(value, depth + 1)

                plan.append((name, nested))
                self._attnames[name] = field.attname
            else:
                attname = field.attname
                if attname == pk_name:
                    return
                plan.append((key or attname, _attribute_getter(attname)))
                self._attnames[key or attname] = attname

        concrete: list[Any] = [f for f in opts.get_fields() if f.concrete or f.many_to_many]
        if wanted == "__all__":
            for field in concrete:
                if field.name not in exclude and field.attname not in exclude:
                    add_field(field)
        else:
            for name in wanted:
                if name in self._computed or name == "id":
                    continue
                try:
                    field = opts.get_field(name)
                except FieldDoesNotExist:
                    matches = [f for f in concrete if getattr(f, "attname", None) == name]
                    if not matches:
                        raise ImproperlyConfigured(
                            f"{type(self).__name__}.Meta.fields names {name!r}, which is not a "
                            f"field of {opts.label} (fields: "
                            f"{', '.join(f.name for f in concrete)}) nor a serialize_{name}() "
                            "method."
                        ) from None
                    field = matches[0]
                if not (field.concrete or field.many_to_many):
                    raise ImproperlyConfigured(
                        f"{type(self).__name__}.Meta.fields names {name!r}, a reverse relation "
                        f"of {opts.label}; publish it with a serialize_{name}() method."
                    )
                add_field(field)
        for name, method in self._computed.items():
            if name not in exclude:
                plan.append((name, _computed_getter(getattr(self, method))))
        many_to_many = {f.name for f in concrete if f.many_to_many}
        for option, names in (
            ("update_fields", self.update_fields),
            ("create_fields", self.create_fields),
        ):
            for name in names:
                if name not in self._attnames or name in many_to_many:
                    raise ImproperlyConfigured(
                        f"{type(self).__name__}.Meta.{option} names {name!r}, which is not a "
                        "serialized field stored in a column."
                    )
        return plan

    def _get_plan(self) -> list[tuple[str, Callable[[models.Model, int], Any]]]:
        if self._plan is None:
            self._plan = self._build_plan()
        return self._plan

    def field_sources(self) -> dict[str, str]:
        """Return ``{payload key: model attribute name}`` for the stored (non-computed) fields."""
        self._get_plan()
        return dict(self._attnames)

    # Serializing -----------------------------------------------------------------------------

    def serialize(self, obj: models.Model, depth: int = 0) -> dict[str, Any]:
        """Return ``obj`` as a JSON-ready dict (values may be Django JSON types)."""
        return {key: getter(obj, depth) for key, getter in self._get_plan()}

    def serialize_changed(self, obj: models.Model, attnames: Iterable[str]) -> dict[str, Any]:
        """Return ``id``, the keys that come from the given attributes, and computed fields."""
        changed = set(attnames)
        sources = self.field_sources()
        data: dict[str, Any] = {}
        for key, getter in self._get_plan():
            source = sources.get(key)
            if key == "id" or source is None or source in changed:
                data[key] = getter(obj, 0)
        return data

    # Client writes ---------------------------------------------------------------------------

    def apply(
        self,
        instance: models.Model,
        data: Mapping[str, Any],
        *,
        fields: Iterable[str] | None = None,
    ) -> list[str]:
        """Set the writable fields of ``instance`` from ``data``; return the attributes set.

        ``fields`` defaults to ``Meta.update_fields`` (routers pass ``create_fields`` for a
        create). Raises ``ValidationError`` with one entry per bad field: fields that are not
        writable, and values the model field refuses (``clean()``). Nothing is set then.
        """
        allowed = set(self.update_fields if fields is None else fields)
        sources = self.field_sources()
        errors: dict[str, list[str]] = {}
        updates: dict[str, Any] = {}
        for key, value in data.items():
            if key == "id":
                continue
            if key not in allowed:
                errors[key] = [
                    f"This field cannot be written; writable fields: "
                    f"{', '.join(sorted(allowed)) or 'none'}."
                ]
                continue
            attname = sources[key]
            field = next(f for f in instance._meta.concrete_fields if f.attname == attname)
            try:
                if field.is_relation:
                    target: Any = field.target_field  # type: ignore[attr-defined]
                    updates[attname] = target.clean(value, instance)
                else:
                    updates[attname] = field.clean(value, instance)
            except ValidationError as exc:
                errors[key] = list(exc.messages)
        if errors:
            raise ValidationError(errors)
        for attname, value in updates.items():
            setattr(instance, attname, value)
        return list(updates)


def as_serializer(
    value: Any, *, owner: str = "serializer"
) -> Callable[[models.Model], dict[str, Any]]:
    """Return ``obj -> dict`` for an rtbridge or DRF serializer (class, instance or path)."""
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{owner} = {value!r} cannot be imported: {exc}") from exc
    if isinstance(value, type) and issubclass(value, ModelSerializer):
        value = value()
    if isinstance(value, ModelSerializer):
        return value.serialize
    to_representation = getattr(value, "to_representation", None)
    if isinstance(value, type) and to_representation is not None:
        drf_class = value  # a DRF Serializer class: instantiate per object, as DRF expects.

        def drf_serialize(obj: models.Model) -> dict[str, Any]:
            data = dict(drf_class(obj).data)
            data.setdefault("id", obj.pk)
            return data

        return drf_serialize
    raise ImproperlyConfigured(
        f"{owner} = {value!r} is not a serializer; give an rtbridge.ModelSerializer subclass, "
        "a DRF Serializer class, or a dotted path to one."
    )
