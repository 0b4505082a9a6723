"""Registries: a name maps to ``"package.module:Attr"`` and is imported only when asked for.

Like Ray's ``SEARCH_ALG_IMPORT``: listing names costs nothing, getting one imports its module
(and torch with it). A user's own model or task registers with the decorator in their module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from abl.errors import AblError, did_you_mean, one_of

T = TypeVar("T")


def import_plugins(modules: list[str] | tuple[str, ...], *, where: str = "plugins") -> None:
    """Import the user's modules named by a space, so their registrations run."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise AblError(f"plugin module '{name}' cannot be imported ({exc}) ({where})") from exc


def import_object(path: str, *, what: str) -> Any:
    """Import ``package.module:Attr``; an unimportable path is an AblError naming ``what``."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise AblError(f"{what} must be a registered name or 'package.module:Name'; got '{path}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AblError(f"{what} '{path}': cannot import module '{module_name}' ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AblError(f"{what} '{path}': module '{module_name}' has no '{attr}'") from None


class Registry(Generic[T]):
    """Names of one extension point (models, tasks, trainables), imported lazily."""

    def __init__(
        self, kind: str, builtins: dict[str, str], configs: dict[str, str] | None = None
    ) -> None:
        self.kind = kind
        self._paths: dict[str, str] = dict(builtins)
        self._configs: dict[str, str] = dict(configs or {})  # name -> torch-free Config path
        self._loaded: dict[str, T] = {}
        self._plugins: set[str] = set()

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._paths.keys() | self._loaded.keys())

    def __contains__(self, name: object) -> bool:
        return name in self._paths or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def register(self, name: str, *, builtin: bool = False) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("my_att")`` above a class registers it under a name."""

        def deco(obj: T) -> T:
            self._loaded[name] = obj
            if not builtin:
                self._plugins.add(name)
            return obj

        return deco

    def plugin_names(self) -> list[str]:
        """Names registered by modules outside abl (a space's ``plugins:``)."""
        return sorted(self._plugins)

    def config_of(self, name: str) -> Any:
        """The ``Config`` class of ``name``, imported without its module where a built-in's
        config lives apart (models/configs.py: reading a schema needs no torch)."""
        if name not in self._loaded and name in self._configs:
            return import_object(self._configs[name], what=f"{self.kind} config")
        return self.get(name).Config  # type: ignore[attr-defined]

    def get(self, name: str) -> T:
        """The object registered as ``name``, or one named by ``package.module:Attr``."""
        if name in self._loaded:
            return self._loaded[name]
        if name in self._paths:
            obj = import_object(self._paths[name], what=self.kind)
        elif ":" in name:
            obj = import_object(name, what=self.kind)
        else:
            raise AblError(
                f"{self.kind} must be one of {one_of(self.names())} or 'package.module:Name'; "
                f"got '{name}'{did_you_mean(name, self.names())}"
            )
        self._loaded[name] = obj
        return obj
