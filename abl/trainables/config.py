"""Typed configs: one pydantic model per component, a description on every field.

A component (model, task, the loop's ``train.*``) declares its knobs as a subclass of
:class:`ComponentConfig`; rules that a single value must meet sit on its field::

    from typing import Literal
    from pydantic import Field
    from abl.trainables.config import ComponentConfig

    class MLPConfig(ComponentConfig):
        hidden: int = Field(32, ge=1, description="hidden units")
        act: Literal["gelu", "relu"] = Field("gelu", description="activation")

A trial config is checked against these models (unknown keys, wrong types and broken bounds
are one :class:`~abl.errors.AblError` line, never ignored) and ``abl trainables`` lists every
field with its type, default and description. Torch-free: the built-in configs live in
``models/configs.py`` and ``tasks/configs.py`` so a space is checked without importing torch.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo

from abl.errors import AblError, range_rule, validation_message


class ComponentConfig(BaseModel):
    """Base of every component's config: frozen, unknown keys refused, no type guessing.

    Values keep their type: a string is never a number, a bool never an int, an int never a
    bool. Two conversions are allowed, as YAML writes numbers: an int for a float field
    (``1`` -> ``1.0``) and a whole float for an int field (``2.0`` -> ``2``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _whole_float_is_int(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is not None and field.annotation is int and isinstance(value, float):
            return int(value) if value.is_integer() else value
        return value


def param(default: Any, help: str) -> Any:
    """A field of a plain ``@dataclass`` config (the older plug-in style), shown by
    ``abl trainables``; a :class:`ComponentConfig` uses ``pydantic.Field(default,
    description=...)`` instead, which also carries bounds."""
    return dataclasses.field(default=default, metadata={"help": help})


@functools.cache
def schema_of(cls: type) -> type[BaseModel]:
    """The pydantic model that validates config class ``cls``.

    A :class:`ComponentConfig` (or any pydantic model) is its own; a plug-in's plain dataclass
    gets one with the same fields, under the same rules.
    """
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls
    if not dataclasses.is_dataclass(cls):
        raise AblError(
            f"a Config must be a ComponentConfig (pydantic model) or a dataclass; got {cls!r}"
        )
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {
        f.name: (
            hints[f.name],
            Field(
                ... if f.default is dataclasses.MISSING else f.default,
                description=f.metadata.get("help", ""),
            ),
        )
        for f in dataclasses.fields(cls)
    }
    return create_model(cls.__name__, __base__=ComponentConfig, __module__=cls.__module__, **fields)


def check(cls: type, values: dict[str, Any], *, section: str, where: str = "trial config") -> Any:
    """``values`` validated by the schema of config class ``cls`` (a pydantic instance); any
    mistake is one AblError line naming ``section.key`` and ``where``."""
    schema = schema_of(cls)
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        message = validation_message(exc, schema, where=where, noun="parameter", prefix=section)
        raise AblError(message) from None


def build(cls: type, values: dict[str, Any], *, section: str, where: str = "trial config") -> Any:
    """An instance of config class ``cls`` from ``values``, checked as :func:`check` does.

    >>> from abl.trainables.train_config import TrainConfig
    >>> build(TrainConfig, {"lr": 1}, section="train").lr
    1.0
    """
    cfg = check(cls, values, section=section, where=where)
    return cfg if isinstance(cfg, cls) else cls(**dict(cfg))


def nested(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"model.d_model": 64}`` -> ``{"model": {"d_model": 64}}`` (top-level keys go under "")."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in config.items():
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out.setdefault("", {})[key] = value
    return out


@dataclass(frozen=True)
class Knob:
    """One flat key of a trial config as ``abl trainables`` lists it: type, default, help."""

    name: str  # "model.pe_type"
    field: FieldInfo

    @property
    def default(self) -> Any:
        return self.field.get_default(call_default_factory=True)

    @property
    def help(self) -> str:
        return self.field.description or ""

    @property
    def choices(self) -> tuple[Any, ...] | None:
        """The allowed values of a ``Literal`` field, else None."""
        tp = self.field.annotation
        return get_args(tp) if get_origin(tp) is Literal else None

    @property
    def type_name(self) -> str:
        """``int >= 1``, ``float in (0, 1)``, ``none|rope``: the type with its rule."""
        if self.choices is not None:
            return "|".join(str(c) for c in self.choices)
        tp = self.field.annotation
        name = getattr(tp, "__name__", str(tp))
        rule = range_rule(self.field.metadata)
        return f"{name} {rule}" if rule else name


def knobs(cls: type, section: str) -> list[Knob]:
    """The fields of config class ``cls`` as flat keys ``section.name``, in declaration order."""
    return [Knob(f"{section}.{name}", f) for name, f in schema_of(cls).model_fields.items()]
