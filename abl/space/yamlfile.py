"""Safe YAML with YAML 1.2 scalars.

PyYAML follows YAML 1.1, where ``1e-3`` is a string and ``no``/``off`` are booleans; researchers
write learning rates as ``1e-3`` and nobody means False by ``no``. This loader keeps
``yaml.SafeLoader`` (no object construction) and swaps in the YAML 1.2 core-schema resolvers for
booleans and floats. It also refuses files over a size cap and alias expansion bombs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from abl.errors import AblError

MAX_BYTES = 1 << 20  # a space file is a few hundred bytes; 1 MiB is plenty
MAX_ALIASES = 100
MAX_NODES = 100_000  # values after aliases are expanded: a 192-trial space has about 100

_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans and floats, and a cap on aliases."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (an alias bomb?)")
        return super().compose_node(parent, index)


class Dumper(yaml.SafeDumper):
    """SafeDumper that quotes exactly the strings :class:`Loader` would read as non-strings."""


_REPLACED = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:float")
for _cls in (Loader, Dumper):
    _cls.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    _cls.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    return loader.construct_scalar(node).lower() == "true"


Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def loads(text: str, *, source: str) -> Any:
    """Parse YAML text; any syntax problem is an AblError naming ``source`` and the line."""
    try:
        data = yaml.load(text, Loader=Loader)
        _check_expanded(data, source)
        return data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise AblError(f"invalid YAML: {exc.problem or exc} ({source}, {where})") from None
    except yaml.YAMLError as exc:
        raise AblError(f"invalid YAML: {exc} ({source})") from None


def _check_expanded(data: Any, source: str) -> None:
    """Refuse documents whose aliases expand past MAX_NODES values or MAX_BYTES of text.

    PyYAML shares an aliased object instead of copying it, so a small file can stand for a huge
    tree (82 aliases in 553 bytes); everything that walks it (validation, deep copies, an error
    quoting it) would pay for the whole. The walk stops at the cap, so the check is cheap.
    """
    nodes, chars, stack = 0, 0, [data]
    while stack:
        item = stack.pop()
        nodes += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            chars += len(item)
        if nodes > MAX_NODES or chars > MAX_BYTES:
            raise AblError(
                f"a space file must expand to at most {MAX_NODES} values and {MAX_BYTES} "
                f"characters; its aliases expand to more (an alias bomb?) ({source})"
            )


def load_file(path: Path) -> Any:
    """Read and parse a YAML file with clear errors for missing, huge or non-UTF-8 files."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AblError(f"space file not found: {path}") from None
    except OSError as exc:
        raise AblError(f"cannot read space file {path}: {exc.strerror}") from None
    if size > MAX_BYTES:
        raise AblError(f"a space file must be under {MAX_BYTES} bytes; got {size} ({path})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AblError(
            f"a space file must be UTF-8 text; byte {exc.start} is not ({path})"
        ) from None
    except OSError as exc:
        raise AblError(f"cannot read space file {path}: {exc.strerror}") from None
    return loads(text, source=str(path))


def dumps(data: Any) -> str:
    """YAML text that :func:`loads` reads back to the same data."""
    return yaml.dump(
        data, Dumper=Dumper, sort_keys=False, default_flow_style=None, allow_unicode=True
    )
