"""``abl trainables [NAME]``: every trainable and each parameter with its type, default and meaning.

Read off the pydantic config models (:mod:`abl.trainables.config`), without importing torch.
"""

from __future__ import annotations

import click
from rich.table import Table

from abl.cli._render import fmt, terminal


@click.command("trainables")
@click.argument("name", required=False)
def command(name: str | None) -> None:
    """List trainables with every parameter (flat key), its type and bounds, default and meaning."""
    from abl.trainables.spec import TRAINABLES

    console = terminal()
    for trainable in [name] if name else TRAINABLES.names():
        spec = TRAINABLES.get(trainable)
        console.print(f"[bold]{spec.name}[/]: {spec.description}")
        console.print(
            f"  task {spec.task}; model.kind: {', '.join(spec.models)} (default {spec.default_model})"
        )
        console.print(f"  metrics: {', '.join(spec.metrics())}")
        shared = None
        for kind in spec.models:
            schema = spec.schema(kind)
            if shared is None:
                shared = {
                    k: v
                    for k, v in schema.items()
                    if not k.startswith("model.") or k == "model.kind"
                }
                console.print(_table("shared", shared.values()))
            own = [v for k, v in schema.items() if k.startswith("model.") and k != "model.kind"]
            console.print(_table(f"model.kind={kind}", own))


def _table(title: str, infos) -> Table:
    table = Table("parameter", "type", "default", "meaning", title=title, title_justify="left")
    for info in infos:
        table.add_row(info.name, info.type_name, fmt(info.default), info.help)
    return table
