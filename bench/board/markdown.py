"""A board ``Document`` as Markdown (``leaderboard.md``): every name escaped, code in fences longer than
any backtick run inside it, so hostile names cannot break a table or start a link."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from bench.board.document import (
    GENERATED,
    PLAIN,
    Block,
    BulletList,
    Cell,
    Code,
    Document,
    Image,
    Line,
    Paragraph,
    Refs,
    Section,
    Span,
    Table,
)


def escape_md(text: object) -> str:
    """Make any string safe inside a Markdown table cell: no pipes, tags, code spans or newlines."""
    s = html.escape(str(text), quote=False).replace("\\", "&#92;")  # & < > first, then \ (no escapes)
    return (s.replace("|", "&#124;").replace("`", "&#96;").replace("\r", " ").replace("\n", " ")
            .replace("*", "\\*").replace("_", "\\_").replace("[", "\\[").replace("]", "\\]"))


def fence(text: str, lang: str = "") -> list[str]:
    """A fenced code block longer than any backtick run inside ``text``."""
    ticks = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return [f"{ticks}{lang}", text, ticks]


def code_span(text: str) -> str:
    """An inline code span whose delimiters are longer than any backtick run inside it."""
    text = text.replace("\r", " ").replace("\n", " ")
    ticks = "`" * (1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def link(text: str, href: str) -> str:
    """``[text](href)``: the text escaped, the href percent-quoted (no space, parenthesis or bracket
    left to end it early); plain text where ``href`` is empty (the target has no Markdown page)."""
    return f"[{escape_md(text)}]({quote(href, safe='/#.-_~')})" if href else escape_md(text)


def inline(line: Line, refs: Refs = PLAIN) -> str:
    out = []
    for part in line:
        span = part if isinstance(part, Span) else Span(part)
        if span.kind == "link":
            out.append(link(span.text, refs.page(span.target)))
        elif span.kind == "strong":
            out.append(f"**{escape_md(span.text)}**")
        elif span.kind == "code":
            out.append(code_span(span.text))
        elif span.kind == "verbatim":
            out.append(span.text)
        else:
            out.append(escape_md(span.text))
    return "".join(out)


def cell(c: Cell, refs: Refs = PLAIN) -> str:
    text = link(c.text, refs.page(c.link)) if c.link else escape_md(c.text)
    text = f"**{text}**" if c.strong and c.text else text
    return text + (f" {escape_md(c.flag)}" if c.flag else "")


def table(t: Table, refs: Refs = PLAIN) -> list[str]:
    lines = ["| " + " | ".join(escape_md(c.label) for c in t.columns) + " |", "|" + "---|" * len(t.columns)]
    lines += ["| " + " | ".join(cell(c, refs) for c in row) + " |" for row in t.rows]
    return [*lines, ""]


def block(b: Block, refs: Refs = PLAIN) -> list[str]:
    if isinstance(b, Paragraph):
        return [*(inline(line, refs) for line in b.lines), ""]
    if isinstance(b, BulletList):
        return [*(f"- {inline(item, refs)}" for item in b.items), ""]
    if isinstance(b, Table):
        return table(b, refs)
    if isinstance(b, Image):
        return [f"![{escape_md(b.title)}]({quote(refs.image(b.path))})", ""]
    if isinstance(b, Code):
        return [*fence(b.text, b.lang), ""]
    raise TypeError(f"no Markdown for block {type(b).__name__}")


def section(s: Section, refs: Refs = PLAIN) -> list[str]:
    lines = ["#" * s.level + " " + escape_md(s.title), ""]
    for b in s.blocks:
        lines += block(b, refs)
    return lines


def to_markdown(doc: Document, refs: Refs = PLAIN) -> str:
    """The page ``doc`` as Markdown; ``refs``: how it reaches the board's other pages and images."""
    doc.check_ids()
    lines = [f"# {escape_md(doc.title)}", "", GENERATED, ""]
    lines += [f"- {escape_md(f.label)}: {inline(f.value, refs)}" for f in doc.header] + [""]
    lines += ["Regenerate the board (byte for byte, from the same results):", "", *fence(doc.command, "sh"), ""]
    for b in doc.intro:
        lines += block(b, refs)
    for s in doc.sections:
        lines += section(s, refs)
    return "\n".join(lines).rstrip("\n") + "\n"
