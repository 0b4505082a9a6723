"""A report as a list of blocks, rendered twice: GitHub markdown and one self-contained HTML file.

Text in blocks may use two inline marks, ``**bold**`` and ```code```; table cells can be links.
HTML embeds every image as a base64 data URI, so the file can be mailed or attached as is.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.5}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:4px 10px}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{background:#f6f8fa;border-radius:4px;padding:0.1em 0.3em}pre{padding:0.8em;overflow-x:auto}
img{max-width:100%;margin:0.4em 0.4em 0.4em 0}h1,h2{border-bottom:1px solid #d0d7de}
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: text, optionally a link and bold (the best value of a column)."""

    text: str
    url: str | None = None
    bold: bool = False
    numeric: bool = False


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Cell]]


@dataclass(frozen=True)
class Images:
    """Images side by side; paths relative to the report's folder."""

    paths: list[Path]
    alts: list[str] = field(default_factory=list)


Block = Heading | Para | Bullets | Code | Table | Images


def to_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured markdown."""
    return "\n\n".join(_md(b) for b in blocks) + "\n"


def _md(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Para):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Code):
        return f"```{block.lang}\n{block.text}\n```"
    if isinstance(block, Table):
        head = "| " + " | ".join(block.header) + " |"
        rule = "|" + "|".join("---" for _ in block.header) + "|"
        body = ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join([head, rule, *body])
    alts = block.alts or [p.stem for p in block.paths]
    return " ".join(f"![{alt}]({p.as_posix()})" for p, alt in zip(block.paths, alts, strict=True))


def _md_cell(cell: Cell) -> str:
    text = cell.text.replace("|", "\\|").replace("\n", " ")
    text = f"[{text}]({cell.url})" if cell.url else text
    return f"**{text}**" if cell.bold and text else text


def to_html(blocks: list[Block], *, title: str, base: Path) -> str:
    """One HTML file with the CSS inline and images (read from ``base``) embedded."""
    body = "\n".join(_html(b, base) for b in blocks)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<a href='\2'>\1</a>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _html(block: Block, base: Path) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
        rows = "".join("<tr>" + "".join(map(_html_cell, r)) + "</tr>" for r in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    alts = block.alts or [p.stem for p in block.paths]
    return (
        "<div>"
        + "".join(_img(base / p, a) for p, a in zip(block.paths, alts, strict=True))
        + "</div>"
    )


def _html_cell(cell: Cell) -> str:
    text = html.escape(cell.text)
    if cell.url:
        text = f"<a href='{html.escape(cell.url)}'>{text}</a>"
    if cell.bold and text:
        text = f"<b>{text}</b>"
    return f"<td class='num'>{text}</td>" if cell.numeric else f"<td>{text}</td>"


def _img(path: Path, alt: str) -> str:
    """The plot inlined: its SVG (sharp at any zoom) when one was drawn beside the PNG."""
    svg = path.with_suffix(".svg")
    kind, source = ("svg+xml", svg) if svg.is_file() else ("png", path)
    data = base64.b64encode(source.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/{kind};base64,{data}'>"
