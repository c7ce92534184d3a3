"""A board ``Document`` as one static HTML page: inline CSS and a small inline script (sortable tables,
suite and category filters); nothing is fetched from the network.

Every string of the document is escaped here (``html.escape`` with quotes, in text and attributes alike)
and no data goes into the script, so a name cannot become markup. The bytes depend only on the
document: regenerating from the same results gives the same page. Figures are ``<img>`` elements with
paths relative to the page (the plots are PNG files beside the results; embedding them would copy
megabytes into every regenerated page).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterable
from urllib.parse import quote

from bench.board.document import (
    GENERATED,
    PLAIN,
    Block,
    BulletList,
    Cell,
    Code,
    Column,
    Document,
    Image,
    Line,
    Paragraph,
    Refs,
    Section,
    Span,
    Table,
)

STYLE = """
body { font-family: system-ui, sans-serif; line-height: 1.45; margin: 1.5rem auto; max-width: 96rem;
       padding: 0 1rem; color: #1b1b1b; background: #fff; }
h1 { margin-bottom: .5rem; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #f5f5f5; padding: .6rem; white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-family: ui-monospace, monospace; font-size: .9em; }
.filters { display: flex; gap: 1.5rem; flex-wrap: wrap; margin: 1rem 0; padding: .6rem;
           background: #f0f4f8; border-radius: 4px; }
nav ul { columns: 18rem; padding-left: 1.2rem; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { border: 1px solid #d0d0d0; padding: .2rem .45rem; text-align: left; vertical-align: top; }
thead th { background: #eef0f3; position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafafa; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer;
            text-align: left; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
.flag { color: #b00020; }
td.reference { color: #6b6b6b; background: #f3f3f3; font-style: italic; }
td.tone-0 { background: #1d4f84; color: #fff; } td.tone-1 { background: #4a8bc4; color: #fff; }
td.tone-2 { background: #a9cbe8; } td.tone-3 { background: #dce9f5; } td.tone-4 { background: #f4f7fa; }
td.tone-0 a, td.tone-1 a { color: #fff; }
td[data-tip] { position: relative; cursor: help; }
td[data-tip]:hover::after, td[data-tip]:focus::after { content: attr(data-tip); position: absolute; left: 0;
  top: 100%; z-index: 2; width: max-content; max-width: 16rem; padding: .3rem .45rem; background: #1b1b1b;
  color: #fff; font-style: normal; font-weight: normal; white-space: normal; border-radius: 3px; }
td[data-tip]:focus { outline: 2px solid #e69f00; outline-offset: -2px; }
figure { margin: .5rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
[hidden] { display: none !important; }
"""

# Sorting: a cell's data-num (numbers) or data-text (text, compared numeric-aware) is its key; numbers
# come before text and cells without a key stay last in both directions. Filters: an element tagged
# data-suite / data-category is hidden while another suite / category is selected.
SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    if (cell.hasAttribute("data-num")) { return {num: true, v: parseFloat(cell.getAttribute("data-num"))}; }
    if (cell.hasAttribute("data-text")) { return {num: false, v: cell.getAttribute("data-text")}; }
    return null;
  }
  function compare(a, b) {
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    if (a.num) { return a.v - b.v; }
    return a.v.localeCompare(b.v, undefined, {numeric: true});
  }
  function sortTable(table, index, th) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (row, i) {
      return {row: row, i: i, key: key(row.cells[index])};
    });
    rows.sort(function (x, y) {
      if (!x.key || !y.key) { return (!x.key) - (!y.key) || x.i - y.i; }
      var c = compare(x.key, y.key);
      return (ascending ? c : -c) || x.i - y.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }
  function selected(id) {
    var el = document.getElementById(id);
    return el ? el.value : "";
  }
  function applyFilters() {
    var suite = selected("filter-suite"), category = selected("filter-category");
    document.querySelectorAll("[data-suite], [data-category]").forEach(function (el) {
      var s = el.getAttribute("data-suite"), c = el.getAttribute("data-category");
      el.hidden = Boolean((suite && s !== null && s !== suite) || (category && c !== null && c !== category));
    });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.querySelector("button").addEventListener("click", function () { sortTable(table, index, th); });
    });
  });
  ["filter-suite", "filter-category"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("change", applyFilters); }
  });
  applyFilters();
}());
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def attributes(**values: object) -> str:
    """`` name="value"`` pairs, escaped; ``data_suite`` → ``data-suite``; None leaves the attribute out."""
    return "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in values.items() if v is not None)


def href(target: str, refs: Refs) -> str:
    """A link target as an escaped, percent-quoted relative href (no scheme can get through: ':' is quoted)."""
    return esc(quote(refs.page(target), safe="/#.-_~"))


def inline(line: Line, refs: Refs = PLAIN) -> str:
    out = []
    for part in line:
        span = part if isinstance(part, Span) else Span(part)
        if span.kind == "link":
            out.append(f'<a href="{href(span.target, refs)}">{esc(span.text)}</a>')
        elif span.kind == "strong":
            out.append(f"<strong>{esc(span.text)}</strong>")
        elif span.kind == "code":
            out.append(f"<code>{esc(span.text)}</code>")
        else:  # text and verbatim alike: verbatim only means "not Markdown-escaped"
            out.append(esc(span.text))
    return "".join(out)


def sort_attribute(key: float | str | None) -> str:
    if key is None:
        return ""
    if isinstance(key, str):
        return attributes(data_text=key)
    return attributes(data_num=repr(float(key)))  # repr: the shortest string that reads back the same float


def cell(c: Cell, column: Column, refs: Refs = PLAIN) -> str:
    body = f'<a href="{href(c.link, refs)}">{esc(c.text)}</a>' if c.link else esc(c.text)
    body = f"<strong>{body}</strong>" if c.strong and c.text else body
    flag = f' <span class="flag">{esc(c.flag)}</span>' if c.flag else ""
    classes = " ".join(k for k in ("reference" if c.reference else "",
                                   f"tone-{min(c.tone, 4)}" if c.tone is not None else "") if k)
    tags = attributes(data_suite=column.suite, data_category=column.category, **{"class": classes or None},
                      data_tip=c.tip, title=c.tip, tabindex="0" if c.tip else None)
    return f"<td{sort_attribute(c.sort)}{tags}>{body}{flag}</td>"


def table(t: Table, refs: Refs = PLAIN) -> list[str]:
    head = "".join(f'<th scope="col" aria-sort="none"{attributes(data_suite=c.suite, data_category=c.category)}>'
                   f'<button type="button">{esc(c.label)}</button></th>' for c in t.columns)
    lines = [f'<div class="table-wrap"{attributes(data_category=t.category)}><table{attributes(id=t.id)} '
             'class="sortable">',
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    lines += ["<tr>" + "".join(cell(c, col, refs) for c, col in zip(row, t.columns, strict=True)) + "</tr>"
              for row in t.rows]
    return [*lines, "</tbody></table></div>"]


def block(b: Block, refs: Refs = PLAIN) -> list[str]:
    if isinstance(b, Paragraph):
        return ["<p>" + "<br>\n".join(inline(line, refs) for line in b.lines) + "</p>"]
    if isinstance(b, BulletList):
        return ["<ul>", *(f"<li>{inline(item, refs)}</li>" for item in b.items), "</ul>"]
    if isinstance(b, Table):
        return table(b, refs)
    if isinstance(b, Image):
        src = esc(quote(refs.image(b.path)))
        return [f'<figure><a href="{src}"><img src="{src}" alt="{esc(b.title)}"></a></figure>']
    if isinstance(b, Code):
        lang = attributes(**{"class": f"language-{b.lang}"}) if b.lang else ""
        return [f"<pre><code{lang}>{esc(b.text)}</code></pre>"]
    raise TypeError(f"no HTML for block {type(b).__name__}")


def section(s: Section, refs: Refs = PLAIN) -> list[str]:
    h = f"h{min(max(s.level, 2), 6)}"
    lines = [f"<section{attributes(id=s.id, data_suite=s.suite, data_category=s.category)}>",
             f"<{h}>{esc(s.title)}</{h}>"]
    for b in s.blocks:
        lines += block(b, refs)
    return [*lines, "</section>"]


def _tags(doc: Document, name: str) -> list[str]:
    """Every suite or category the document tags (sections and columns), sorted: the filters' choices."""
    found = {getattr(s, name) for s in doc.sections}
    found |= {getattr(c, name) for t in doc.tables() for c in t.columns}
    found |= {getattr(t, name, None) for t in doc.tables()}
    return sorted(v for v in found if v is not None)


def _select(ident: str, label: str, every: str, values: Iterable[str]) -> str:
    options = "".join(f"<option{attributes(value=v)}>{esc(v)}</option>" for v in values)
    return (f'<label>{esc(label)} <select id="{ident}"><option value="">{esc(every)}</option>{options}'
            "</select></label>")


def filters(doc: Document) -> list[str]:
    suites, categories = _tags(doc, "suite"), _tags(doc, "category")
    if len(suites) < 2 and len(categories) < 2:  # one choice filters nothing
        return []
    parts = ([_select("filter-suite", "Suite", "all suites", suites)] if len(suites) > 1 else []) + (
        [_select("filter-category", "Category", "all categories", categories)] if len(categories) > 1 else [])
    return ['<div class="filters" role="group" aria-label="Filter the board">', *parts, "</div>"]


def contents(doc: Document) -> list[str]:
    items = [f'<li{attributes(data_suite=s.suite, data_category=s.category)}><a href="#{esc(s.id)}">'
             f"{esc(s.title)}</a></li>" for s in doc.sections if s.level <= 2]
    return ['<nav aria-label="Contents"><ul>', *items, "</ul></nav>"]


def to_html(doc: Document, refs: Refs = PLAIN) -> str:
    """The page. ``refs`` maps link targets and ``Image.path`` s (relative to the Markdown front) to
    hrefs relative to this page; default: unchanged, for a page beside the Markdown."""
    doc.check_ids()
    facts = "".join(f"<dt>{esc(f.label)}</dt><dd>{inline(f.value, refs)}</dd>" for f in doc.header)
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="GradBench">', f"<title>{esc(doc.title)}</title>",
             f"<style>{STYLE}</style>", "</head>", "<body>", GENERATED, "<header>",
             f"<h1>{esc(doc.title)}</h1>", f'<dl class="facts">{facts}</dl>',
             "<p>Regenerate the board, its pages and the Markdown (byte for byte, from the same results):</p>",
             f'<pre><code class="language-sh">{esc(doc.command)}</code></pre>', *filters(doc), "</header>",
             *contents(doc), "<main>"]
    for b in doc.intro:
        lines += block(b, refs)
    for s in doc.sections:
        lines += section(s, refs)
    lines += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def relinker(markdown_dir: os.PathLike | str, page_dir: os.PathLike | str) -> Callable[[str], str]:
    """``Refs.image`` for a page in ``page_dir`` whose document's image paths are relative to ``markdown_dir``."""
    def src(path: str) -> str:
        return os.path.relpath(os.path.join(markdown_dir, path), page_dir).replace(os.sep, "/")
    return src
