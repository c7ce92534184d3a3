"""The board as a structure that both serialisers write: ``leaderboard.md`` (``markdown``) and the static
page (``html``) come from one ``Document``, so they cannot disagree.

Every string here is plain text — a method name, a title, a cell — and each serialiser escapes it for
its format. The one exception is ``Span(kind="verbatim")``: GradBench's own wording, written as-is in
Markdown (it may hold characters Markdown would otherwise escape) and still escaped in HTML. Never put
data (names from results or submissions) in a verbatim span.

To add to the board, build a ``Section`` of blocks and insert it into ``Document.sections``; a
``Column`` or ``Section`` tagged with a ``suite`` / ``category`` follows the page's filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

SpanKind = Literal["text", "strong", "code", "verbatim"]


@dataclass
class Span:
    """Inline text: ``text`` (escaped), ``strong`` (bold), ``code`` (monospace, e.g. a digest), or
    ``verbatim`` (GradBench's own Markdown-literal wording; see the module docstring)."""
    text: str
    kind: SpanKind = "text"


Inline = str | Span  # a bare str is Span(str, "text")
Line = tuple[Inline, ...]


@dataclass
class Paragraph:
    """One or more lines of inline text (Markdown keeps the line breaks; HTML writes <br>)."""
    lines: list[Line]


@dataclass
class BulletList:
    items: list[Line]


@dataclass
class Column:
    """A table column. ``suite`` / ``category``: the page hides the column when another is selected."""
    label: str
    suite: str | None = None
    category: str | None = None


@dataclass
class Cell:
    """A table cell: ``text`` as shown; ``sort`` the key the HTML table sorts by (numbers before text,
    None = no value, last in either direction); ``flag`` a short marker shown after the text (⚠)."""
    text: str
    sort: float | str | None = None
    flag: str | None = None


@dataclass
class Table:
    id: str
    columns: list[Column]
    rows: list[list[Cell]]

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.id}: a row has {len(row)} cells for {len(self.columns)} columns")


@dataclass
class Image:
    """A figure; ``path`` is relative to the Markdown board (the HTML writer is told how to reach it)."""
    title: str
    path: str


@dataclass
class Code:
    text: str
    lang: str = ""


Block = Paragraph | BulletList | Table | Image | Code


@dataclass
class Section:
    """A heading (``level`` 2 = part of the board, 3 = under the level-2 section before it) and its
    blocks. Sections are a flat list; ``suite`` / ``category`` tag it for the page's filters."""
    id: str
    title: str
    level: int
    blocks: list[Block] = field(default_factory=list)
    suite: str | None = None
    category: str | None = None


@dataclass
class Field:
    """A line of the board's header: ``label: value``."""
    label: str
    value: Line


@dataclass
class Document:
    title: str
    header: list[Field]
    command: str  # the shell command that regenerates the board
    sections: list[Section]

    def tables(self) -> Iterator[Table]:
        return (b for s in self.sections for b in s.blocks if isinstance(b, Table))

    def check_ids(self) -> None:
        """Section and table ids are page anchors: they must be unique."""
        ids = [s.id for s in self.sections] + [t.id for t in self.tables()]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate section/table id(s) {dup}: make each id unique (see Anchors)")


class Anchors:
    """Unique, readable ids from arbitrary names: ``new("track", "a|b")`` → ``track-a-b``; a repeat gets
    ``-2``, ``-3`` … (in call order, so the ids depend only on the document's content)."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def new(self, *parts: object) -> str:
        base = re.sub(r"[^A-Za-z0-9_.]+", "-", "-".join(str(p) for p in parts if str(p) != "")).strip("-").lower()
        base = base or "section"
        out, i = base, 1
        while out in self.taken:
            i += 1
            out = f"{base}-{i}"
        self.taken.add(out)
        return out
