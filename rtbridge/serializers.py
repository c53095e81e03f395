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

        def validate_text(self, value):                  # called on client writes of "text"
            if not value.strip():
                raise ValidationError("Say what to do.")

Every payload carries ``id`` (the primary key). Foreign keys appear as ``<name>_id``; many-to-many
fields as a list of primary keys under the field's name. DRF serializers are accepted wherever
an rtbridge serializer is (see :func:`as_serializer`). SwampDragon's ``Meta.publish_fields`` is
an alias of ``fields``; any other ``Meta`` option rtbridge does not take is a system check error
(:meth:`ModelSerializer.check`) and refuses to serialize, so no option is ever silently ignored.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import import_string

__all__ = ["ModelSerializer", "as_serializer"]

MAX_DEPTH = 3

#: The options of ``ModelSerializer.Meta``; ``publish_fields`` is SwampDragon's name of ``fields``.
META_OPTIONS = ("model", "fields", "publish_fields", "exclude", "update_fields", "create_fields")

#: ``Meta`` options of SwampDragon's and DRF's serializers that rtbridge does not take: what to do.
FOREIGN_META_OPTIONS = {
    "id_field": (
        "rtbridge payloads always carry the primary key as 'id'; remove id_field, publish the "
        "other key as a field, and let the router look objects up by it (ModelRouter.lookup_field)"
    ),
    "base_channel": (
        "the channel is the model's: set channel = '...' in the model's RTBridge inner class "
        "(default '<app_label>.<model_name>')"
    ),
    "read_only_fields": (
        "every published field is read-only unless Meta.update_fields (or create_fields) names it"
    ),
    "extra_kwargs": "validation is the model fields' own (full_clean()) plus validate_<field>()",
    "depth": "declare nested serializers as class attributes (todo_list = TodoListSerializer())",
}

#: Keys AngularJS adds to objects it renders (``$$hashKey``): never fields, always refused by name.
ANGULAR_PREFIX = "$$"


def _declared(meta: type, name: str) -> bool:
    """Return whether a user's ``Meta`` (or a ``Meta`` it inherits) sets ``name``."""
    return any(
        name in vars(klass)
        for klass in getattr(meta, "__mro__", (meta,))
        if klass not in (object, ModelSerializer.Meta)
    )


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
            for option in ("fields", "publish_fields"):
                fields = getattr(meta, option, "__all__")
                # SwampDragon's classic bug: ("x") is a string, not a tuple.
                if isinstance(fields, str) and fields != "__all__":
                    raise ImproperlyConfigured(
                        f"{cls.__name__}.Meta.{option} = {fields!r} is a string; give a list "
                        f"such as [{fields!r}] or '__all__'."
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

    # Checks ----------------------------------------------------------------------------------

    @classmethod
    def check(cls, **kwargs: Any) -> list[checks.CheckMessage]:
        """Return the errors in this serializer's options, as ``manage.py check`` reports them.

        ``rtbridge.E030``: a ``Meta`` option rtbridge does not take (SwampDragon's ``id_field``,
        ``base_channel``, DRF's ``read_only_fields``...; the hint names what to use instead).
        ``E031``: ``fields`` together with its SwampDragon alias ``publish_fields``. ``E032``: a
        relation given a serializer by name (SwampDragon's ``todo_list = 'TodoListSerializer'``).
        ``E033``: a ``validate_<field>()`` that no client write reaches. ``E034``: a
        ``serialize_<name>()`` that cannot be called as ``serialize_<name>(obj)`` (SwampDragon's
        ``(obj, serializer)`` form). Nested serializers are
        checked too. A serializer with any of these refuses to serialize
        (``ImproperlyConfigured``), so no option is ever silently ignored.
        """
        meta = getattr(cls, "Meta", ModelSerializer.Meta)
        try:
            model: type[models.Model] | None = _resolve_model(
                getattr(meta, "model", None), cls.__name__
            )
        except ImproperlyConfigured:
            model = None  # reported where the serializer is used (rtbridge.E006 / E044)
        errors = [
            *_check_meta_options(cls, meta, model),
            *_check_string_relations(cls, model),
            *_check_validators(cls, meta),
            *_check_computed(cls),
        ]
        for nested in cls._related.values():
            errors.extend(type(nested).check())
        return errors

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
        option = "publish_fields" if _declared(meta, "publish_fields") else "fields"
        wanted = getattr(meta, option, "__all__")
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
                            f"{type(self).__name__}.Meta.{option} names {name!r}, which is not a "
                            f"field of {opts.label} (fields: "
                            f"{', '.join(f.name for f in concrete)}) nor a serialize_{name}() "
                            "method."
                        ) from None
                    field = matches[0]
                if not (field.concrete or field.many_to_many):
                    raise ImproperlyConfigured(
                        f"{type(self).__name__}.Meta.{option} names {name!r}, a reverse relation "
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
            cls = type(self)
            # Checked once per class (classes do not change after import); never cached on a
            # parent, whose options differ.
            errors = cls.__dict__.get("_option_errors")
            if errors is None:
                errors = cls.check()
                cls._option_errors = errors  # type: ignore[attr-defined]
            if errors:
                raise ImproperlyConfigured(f"{errors[0].msg} {errors[0].hint} ({errors[0].id})")
            self._plan = self._build_plan()
        return self._plan

    def field_sources(self) -> dict[str, str]:
        """Return ``{payload key: model attribute name}`` for the stored (non-computed) fields."""
        self._get_plan()
        return dict(self._attnames)

    def published_keys(self) -> frozenset[str]:
        """Return every key of the payload: ``id``, the fields and the computed fields."""
        return frozenset(key for key, _getter in self._get_plan())

    def read_only_keys(
        self, data: Mapping[str, Any], *, fields: Iterable[str] | None = None
    ) -> list[str]:
        """Return the keys of ``data`` that :meth:`apply` skips: published but not writable."""
        allowed = set(self.update_fields if fields is None else fields)
        published = self.published_keys()
        return [key for key in data if key != "id" and key not in allowed and key in published]

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
        create). Keys the serializer publishes but clients may not write (``id``, read-only and
        computed fields) are skipped, so a client may send back a whole object it received
        (:meth:`read_only_keys` lists them). Raises ``ValidationError`` with one entry per bad
        key: keys that are not published fields (a typo, AngularJS's ``$$hashKey``), values the
        model field refuses (``clean()``) and values a ``validate_<field>(value)`` method refuses
        (it raises ``ValidationError``; a value it returns, if not None, is stored instead).
        Nothing is set then.
        """
        allowed = set(self.update_fields if fields is None else fields)
        sources = self.field_sources()
        published = self.published_keys()
        errors: dict[str, list[str]] = {}
        updates: dict[str, Any] = {}
        for key, value in data.items():
            if key == "id":
                continue  # identifies the object; never written
            if key not in allowed:
                if key not in published:
                    errors[key] = [self._unknown_key_message(key, allowed)]
                continue  # published but read-only: skipped, as documented above
            attname = sources[key]
            field = next(f for f in instance._meta.concrete_fields if f.attname == attname)
            try:
                if field.is_relation:
                    target: Any = field.target_field  # type: ignore[attr-defined]
                    cleaned = target.clean(value, instance)
                else:
                    cleaned = field.clean(value, instance)
                validator = getattr(self, f"validate_{key}", None)
                if callable(validator):
                    returned = validator(cleaned)
                    cleaned = cleaned if returned is None else returned
            except ValidationError as exc:
                errors[key] = list(exc.messages)
                continue
            updates[attname] = cleaned
        if errors:
            raise ValidationError(errors)
        for attname, value in updates.items():
            setattr(instance, attname, value)
        return list(updates)

    def _unknown_key_message(self, key: str, allowed: set[str]) -> str:
        writable = ", ".join(sorted(allowed)) or "none"
        if key.startswith(ANGULAR_PREFIX):
            return (
                f"{key!r} is not a field: AngularJS adds it to the objects it renders. Send only "
                f"the fields you change (or angular.toJson(item), which leaves it out); writable "
                f"fields: {writable}."
            )
        return (
            f"{key!r} is not a field of this object; writable fields: {writable} (read-only "
            f"fields: {', '.join(sorted(self.published_keys() - allowed - {'id'}))})."
        )


def _error(cls: type, code: str, msg: str, hint: str) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=cls, id=f"rtbridge.{code}")


def _check_meta_options(
    cls: type[ModelSerializer], meta: type, model: type[models.Model] | None
) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    declared = {
        option
        for klass in getattr(meta, "__mro__", (meta,))
        if klass not in (object, ModelSerializer.Meta)
        for option in vars(klass)
        if not option.startswith("_")
    }
    pk = model._meta.pk if model is not None else None
    for option in sorted(declared - set(META_OPTIONS)):
        value = getattr(meta, option)
        if option == "id_field" and pk is not None and value in ("pk", pk.name, pk.attname):
            continue  # names the primary key: what rtbridge's "id" is anyway
        close = difflib.get_close_matches(option, META_OPTIONS, n=1)
        hint = FOREIGN_META_OPTIONS.get(option) or (
            f"did you mean {close[0]!r}?" if close else f"options: {', '.join(META_OPTIONS)}"
        )
        errors.append(
            _error(
                cls,
                "E030",
                f"{cls.__name__}.Meta.{option} = {value!r} is not an rtbridge serializer option; "
                "it would be ignored, so the serializer refuses to work.",
                hint[0].upper() + hint[1:] + ".",
            )
        )
    if _declared(meta, "fields") and _declared(meta, "publish_fields"):
        errors.append(
            _error(
                cls,
                "E031",
                f"{cls.__name__}.Meta sets both fields and publish_fields (SwampDragon's name of "
                "fields).",
                "Keep one of them.",
            )
        )
    return errors


def _check_string_relations(
    cls: type[ModelSerializer], model: type[models.Model] | None
) -> list[checks.CheckMessage]:
    if model is None:
        return []
    relations = {
        field.name if field.concrete else field.get_accessor_name()  # type: ignore[union-attr]
        for field in model._meta.get_fields()
        if field.is_relation
    }
    errors: list[checks.CheckMessage] = []
    for klass in cls.__mro__[: cls.__mro__.index(ModelSerializer)]:
        for attribute, value in vars(klass).items():
            if isinstance(value, str) and attribute in relations:
                errors.append(
                    _error(
                        cls,
                        "E032",
                        f"{cls.__name__}.{attribute} = {value!r} names a serializer by a string "
                        "(SwampDragon's lazy form); rtbridge does not resolve it, so the "
                        "relation would be published as ids.",
                        f"Assign the serializer: {attribute} = {value.rpartition('.')[2]}() "
                        f"(imported), or publish the relation with a serialize_{attribute}(self, "
                        "obj) method.",
                    )
                )
    return errors


def _check_validators(cls: type[ModelSerializer], meta: type) -> list[checks.CheckMessage]:
    create = getattr(meta, "create_fields", None)
    writable = set(getattr(meta, "update_fields", ())) | set(create or ())
    errors: list[checks.CheckMessage] = []
    for attribute in dir(cls):
        field_name = attribute.removeprefix("validate_")
        if (
            field_name != attribute
            and callable(getattr(cls, attribute))
            and field_name not in writable
        ):
            errors.append(
                _error(
                    cls,
                    "E033",
                    f"{cls.__name__}.{attribute}() is never called: {field_name!r} is not in "
                    "Meta.update_fields or Meta.create_fields, so no client writes it.",
                    f"Add {field_name!r} to update_fields (or create_fields), or remove "
                    f"{attribute}().",
                )
            )
    return errors


def _check_computed(cls: type[ModelSerializer]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for name, method in cls._computed.items():
        signature = inspect.signature(getattr(cls, method))
        try:
            signature.bind(None, None)  # (self, obj)
        except TypeError as exc:
            errors.append(
                _error(
                    cls,
                    "E034",
                    f"{cls.__name__}.{method}{signature} cannot be called as {method}(obj) "
                    f"({exc}).",
                    f"Write def {method}(self, obj); to publish a related object with its "
                    f"serializer, nest it instead ({name} = TheSerializer()).",
                )
            )
    return errors


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
