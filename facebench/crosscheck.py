"""Cross-field checks of suite models that still run when an unrelated field fails.

Pydantic runs a model's ``mode="after"`` validators only when every field validated, so one
bad field hides every check that relates two others (``fp16: true`` with ``precision: int8``
went unreported while ``label`` was wrong). A method marked ``@cross_check("fp16",
"precision")`` on a :class:`CrossChecked` model runs on the validated model, and, when some
field failed, on those fields alone (validated one by one, defaults filled in) unless one of
them is among the failures: its problem is then reported beside the field errors, at the
model's location. Checks raise ``ValueError`` and must not change the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import SimpleNamespace
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

F = TypeVar("F", bound=Callable[..., None])
_FIELDS = "__cross_check_fields__"


def cross_check(*fields: str) -> Callable[[F], F]:
    """Mark a method ``check(self) -> None`` (raising ``ValueError``) that reads only
    ``fields`` of the model."""
    def mark(fn: F) -> F:
        setattr(fn, _FIELDS, fields)
        return fn

    return mark


class CrossChecked(BaseModel):
    """Base of models with :func:`cross_check` methods."""

    @model_validator(mode="wrap")
    @classmethod
    def _cross_checks(cls, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> Any:
        try:
            model = handler(data)
        except ValidationError as err:
            if not isinstance(data, dict):
                raise
            failed = {_field_name(cls, e["loc"][0]) for e in err.errors() if e["loc"]}
            problems = _run(cls, lambda fields: _partial(cls, data, fields, failed, info))
            if not problems:
                raise
            raise _joined(cls.__name__, err, problems, data) from None
        problems = _run(cls, lambda fields: model)
        if problems:
            raise _joined(cls.__name__, None, problems, data)
        return model


@functools.cache
def _checks(cls: type) -> list[tuple[tuple[str, ...], Callable[[Any], None]]]:
    """``(fields, check)`` of every :func:`cross_check` method of ``cls`` and its bases."""
    found: dict[str, tuple[tuple[str, ...], Callable[[Any], None]]] = {}
    for klass in reversed(cls.__mro__):
        for name, fn in vars(klass).items():
            fields = getattr(fn, _FIELDS, None)
            if fields is not None:
                found[name] = (fields, fn)
    return list(found.values())


def _run(cls: type, subject: Callable[[tuple[str, ...]], Any]) -> list[ValueError]:
    """The problems of ``cls``'s checks on ``subject(fields)`` (``None``: skip the check)."""
    problems = []
    for fields, check in _checks(cls):
        target = subject(fields)
        if target is None:
            continue
        try:
            check(target)
        except ValueError as exc:
            problems.append(exc)
    return problems


def _field_name(cls: type[BaseModel], key: Any) -> Any:
    """The field a top-level error location or input key belongs to (aliases resolved)."""
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", [alias] if alias else [])
        if key == name or key in choices:
            return name
    return key


def _partial(cls: type[BaseModel], data: dict[Any, Any], fields: tuple[str, ...],
             failed: set[Any], info: ValidationInfo) -> SimpleNamespace | None:
    """``fields`` of raw ``data`` validated one by one (defaults where absent), or ``None``
    when one of them failed or a required one is missing."""
    if failed & set(fields):
        return None
    given = {_field_name(cls, k): v for k, v in data.items()}
    values = {}
    for name in fields:
        field = cls.model_fields[name]
        if name in given:
            try:
                values[name] = _adapter(cls, name).validate_python(given[name],
                                                                    context=info.context)
            except ValidationError:
                return None
        elif field.is_required():
            return None
        else:
            values[name] = field.get_default(call_default_factory=True)
    return SimpleNamespace(**values)


@functools.cache
def _adapter(cls: type[BaseModel], name: str) -> TypeAdapter[Any]:
    field = cls.model_fields[name]
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)])  # type: ignore[misc]


def _joined(title: str, err: ValidationError | None, problems: list[ValueError],
            data: Any) -> ValidationError:
    """``err``'s errors (kept as they were) and one ``value_error`` per problem."""
    details: list[InitErrorDetails] = [
        InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"], e.get("ctx")),
                         loc=e["loc"], input=e["input"])
        for e in (err.errors() if err is not None else [])]
    details += [InitErrorDetails(type="value_error", loc=(), input=data, ctx={"error": p})
                for p in problems]
    return ValidationError.from_exception_data(title, details)
