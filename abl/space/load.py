"""``load_space``: a space file (or built-in name) plus overrides -> a checked Space."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from abl.errors import AblError
from abl.space import yamlfile
from abl.space.overrides import apply_overrides
from abl.space.schema import Space, find_space_file, parse_space
from abl.space.variants import check_models, check_space

if TYPE_CHECKING:
    from abl.trainables.trainable import Trainable


def trainable_of(space: Space) -> Trainable:
    """The space's trainable (its plug-ins imported first): a registered one or a function."""
    from abl.trainables.registry import import_plugins
    from abl.trainables.trainable import lookup

    import_plugins(space.plugins, where=f"{space.source}, plugins")
    try:
        return lookup(space.trainable)
    except AblError as exc:
        raise AblError(f"{exc} ({space.source}, trainable)") from None


def load_space(
    name_or_path: str, overrides: list[str] | tuple[str, ...] = (), *, models: bool = True
) -> Space:
    """Read, override and validate a space; every mistake is one AblError line.

    ``models=False`` skips building the models (see :func:`check_space`): ``run_sweep``
    does that while Ray starts.

    >>> space = load_space("quickstart", ["train.epochs=1"])
    >>> space.fixed["train.epochs"]
    1
    """
    path = find_space_file(name_or_path)
    raw = yamlfile.load_file(path)
    if not isinstance(raw, dict):
        raise AblError(
            f"a space file must be a mapping of keys to values; got {type(raw).__name__} ({path})"
        )
    raw.setdefault("name", path.stem)
    try:
        space = parse_space(apply_overrides(raw, list(overrides)), source=str(path))
        space._overrides = tuple(overrides)
        check_space(space, trainable_of(space), models=models)
    except AblError as exc:
        raise AblError(_name_the_override(str(exc), overrides)) from None
    return space


def check_space_models(space: Space) -> None:
    """The model checks ``load_space(..., models=False)`` left out, its errors worded alike."""
    try:
        check_models(space, trainable_of(space))
    except AblError as exc:
        raise AblError(_name_the_override(str(exc), space._overrides)) from None


def _name_the_override(message: str, overrides: list[str] | tuple[str, ...]) -> str:
    """Say which command-line override set the key an error is about (the last one wins)."""
    if "(override '" in message:
        return message
    for text in reversed(overrides):
        key = text.partition("=")[0].lstrip("~+").strip()
        if key and re.search(rf"[(, ]{re.escape(key)}[,)]", message):
            return f"{message[:-1]}, from override '{text}')" if message.endswith(")") else message
    return message
