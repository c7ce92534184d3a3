"""Where each page of the board lives and how the pages reach each other.

The front is the Markdown board (``leaderboard.md``) and its HTML twin (``RESULTS/board/index.html``
for the published board); every other page is ``<pages>/<key>.md`` and ``<pages>/<key>.html`` (the
static site's method and metric pages: HTML only), ``<pages>`` being ``RESULTS/board`` for the
published board. Links are relative, so the folder can be served or opened from anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.board.document import Refs
from bench.board.front import FRONT
from bench.board.html import relinker, to_html
from bench.board.markdown import to_markdown
from bench.board.render import Site
from bench.run.results import write_file


@dataclass(frozen=True)
class Layout:
    """The files of a board: its Markdown front ``front``, HTML front ``page`` (None: no HTML) and the
    folder of its other pages. Image paths in the documents are relative to ``front``'s folder."""
    front: Path
    page: Path | None
    pages: Path

    def path(self, key: str, html: bool) -> Path:
        if key == FRONT:
            return self.page if html and self.page is not None else self.front
        return self.pages / f"{key}.{'html' if html else 'md'}"

    def refs(self, key: str, html: bool, html_only: set[str]) -> Refs:
        """How the page ``key`` (its HTML or Markdown file) links the others: Markdown links Markdown and
        HTML links HTML; a page that exists only in HTML gets no link from Markdown ("")."""
        here = self.path(key, html).parent

        def page(target: str) -> str:
            name, _, anchor = target.partition("#")
            if not name:
                return f"#{anchor}"
            if not html and name in html_only:
                return ""  # a Markdown reader (e.g. on a forge) would see the HTML's source: no link
            return _relative(self.path(name, html), here) + (f"#{anchor}" if anchor else "")

        return Refs(page=page, image=relinker(self.front.parent, here))


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def write_site(site: Site, layout: Layout) -> list[Path]:
    """Write every page (Markdown unless HTML-only; HTML where the layout has a page), atomically;
    the paths written, in order."""
    written = []
    for key, doc in site.pages.items():
        if key not in site.html_only:
            path = layout.path(key, html=False)
            write_file(path, to_markdown(doc, layout.refs(key, False, site.html_only)).encode("utf-8"))
            written.append(path)
        if layout.page is not None:
            path = layout.path(key, html=True)
            write_file(path, to_html(doc, layout.refs(key, True, site.html_only)).encode("utf-8"))
            written.append(path)
    return written


def prune_stale(folder: Path, written: Iterable[Path], owner: str) -> list[Path]:
    """Delete the files that the last render by ``owner`` wrote into ``folder`` and this one did not, then
    record what this one wrote (``folder/.<owner>.written``, sorted, so the board stays byte-identical):
    the page of a method, metric or suite no longer on the board, or a plot no longer drawn, does not
    linger and stay linked from nowhere. Only files listed by ``owner``'s own record and by no other
    board's are deleted, so another board sharing the folder, or a file a person put there, is left alone."""
    record = folder / f".{owner}.written"
    now = sorted({_relative(p, folder) for p in written if folder.resolve() in p.resolve().parents})
    before = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    others = {name for other in folder.glob(".*.written") if other != record
              for name in other.read_text(encoding="utf-8").splitlines()}
    removed = []
    for name in sorted(set(before) - set(now) - others):
        path = folder / name
        if ".." not in Path(name).parts and path.is_file():
            path.unlink()
            removed.append(path)
    write_file(record, "".join(f"{name}\n" for name in now).encode("utf-8"))
    return removed
