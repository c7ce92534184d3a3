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
    Block,
    BulletList,
    Cell,
    Code,
    Column,
    Document,
    Image,
    Line,
    Paragraph,
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
.table-wrap { overflow-x: auto; margin: .6rem 0 1rem; }
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


def inline(line: Line) -> str:
    out = []
    for part in line:
        span = part if isinstance(part, Span) else Span(part)
        if span.kind == "strong":
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


def cell(c: Cell, column: Column) -> str:
    flag = f' <span class="flag">{esc(c.flag)}</span>' if c.flag else ""
    tags = attributes(data_suite=column.suite, data_category=column.category,
                      **{"class": "reference" if c.reference else None})
    return f"<td{sort_attribute(c.sort)}{tags}>{esc(c.text)}{flag}</td>"


def table(t: Table) -> list[str]:
    head = "".join(f'<th scope="col" aria-sort="none"{attributes(data_suite=c.suite, data_category=c.category)}>'
                   f'<button type="button">{esc(c.label)}</button></th>' for c in t.columns)
    lines = [f'<div class="table-wrap"><table{attributes(id=t.id)} class="sortable">',
             f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    lines += ["<tr>" + "".join(cell(c, col) for c, col in zip(row, t.columns, strict=True)) + "</tr>"
              for row in t.rows]
    return [*lines, "</tbody></table></div>"]


def block(b: Block, image_src: Callable[[str], str]) -> list[str]:
    if isinstance(b, Paragraph):
        return ["<p>" + "<br>\n".join(inline(line) for line in b.lines) + "</p>"]
    if isinstance(b, BulletList):
        return ["<ul>", *(f"<li>{inline(item)}</li>" for item in b.items), "</ul>"]
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Image):
        src = esc(quote(image_src(b.path)))
        return [f'<figure><a href="{src}"><img src="{src}" alt="{esc(b.title)}"></a></figure>']
    if isinstance(b, Code):
        lang = attributes(**{"class": f"language-{b.lang}"}) if b.lang else ""
        return [f"<pre><code{lang}>{esc(b.text)}</code></pre>"]
    raise TypeError(f"no HTML for block {type(b).__name__}")


def section(s: Section, image_src: Callable[[str], str]) -> list[str]:
    h = f"h{min(max(s.level, 2), 6)}"
    lines = [f"<section{attributes(id=s.id, data_suite=s.suite, data_category=s.category)}>",
             f"<{h}>{esc(s.title)}</{h}>"]
    for b in s.blocks:
        lines += block(b, image_src)
    return [*lines, "</section>"]


def _tags(doc: Document, name: str) -> list[str]:
    """Every suite or category the document tags (sections and columns), sorted: the filters' choices."""
    found = {getattr(s, name) for s in doc.sections}
    found |= {getattr(c, name) for t in doc.tables() for c in t.columns}
    return sorted(v for v in found if v is not None)


def _select(ident: str, label: str, every: str, values: Iterable[str]) -> str:
    options = "".join(f"<option{attributes(value=v)}>{esc(v)}</option>" for v in values)
    return (f'<label>{esc(label)} <select id="{ident}"><option value="">{esc(every)}</option>{options}'
            "</select></label>")


def filters(doc: Document) -> list[str]:
    suites, categories = _tags(doc, "suite"), _tags(doc, "category")
    if not suites and not categories:
        return []
    parts = ([_select("filter-suite", "Suite", "all suites", suites)] if suites else []) + (
        [_select("filter-category", "Category", "all categories", categories)] if categories else [])
    return ['<div class="filters" role="group" aria-label="Filter the board">', *parts, "</div>"]


def contents(doc: Document) -> list[str]:
    items = [f'<li{attributes(data_suite=s.suite, data_category=s.category)}><a href="#{esc(s.id)}">'
             f"{esc(s.title)}</a></li>" for s in doc.sections if s.level <= 2]
    return ['<nav aria-label="Contents"><ul>', *items, "</ul></nav>"]


def to_html(doc: Document, image_src: Callable[[str], str] | None = None) -> str:
    """The page. ``image_src`` maps an ``Image.path`` (relative to the Markdown board) to the ``src``
    the page uses (relative to the page); default: unchanged, for a page beside the Markdown."""
    doc.check_ids()
    image_src = image_src or (lambda p: p)
    facts = "".join(f"<dt>{esc(f.label)}</dt><dd>{inline(f.value)}</dd>" for f in doc.header)
    lines = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<meta name="generator" content="GradBench">', f"<title>{esc(doc.title)}</title>",
             f"<style>{STYLE}</style>", "</head>", "<body>", GENERATED, "<header>",
             f"<h1>{esc(doc.title)}</h1>", f'<dl class="facts">{facts}</dl>',
             "<p>Regenerate this page and the Markdown board (byte for byte, from the same results):</p>",
             f'<pre><code class="language-sh">{esc(doc.command)}</code></pre>', *filters(doc), "</header>",
             *contents(doc), "<main>"]
    for s in doc.sections:
        lines += section(s, image_src)
    lines += ["</main>", f"<script>{SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(lines) + "\n"


def relinker(markdown_dir: os.PathLike | str, page_dir: os.PathLike | str) -> Callable[[str], str]:
    """``image_src`` for a page in ``page_dir`` whose document's image paths are relative to ``markdown_dir``."""
    def src(path: str) -> str:
        return os.path.relpath(os.path.join(markdown_dir, path), page_dir).replace(os.sep, "/")
    return src
