"""The board's HTML page: escaped names, deterministic bytes, nothing fetched, the same content as the
Markdown; and, in headless Chromium, sortable tables, filters, images that load and no injected markup.

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromedriver``); without
them they skip. Their screenshot goes to ``tests/artifacts/board.png`` (ignored by git)."""

from __future__ import annotations

import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image as PILImage
from test_leaderboard import CONFIG, make_rows

from bench.board.build import page_path, pages_dir, write_board
from bench.board.document import Paragraph, Section
from bench.board.render import board_site
from bench.board.site import Layout, write_site

HOSTILE = "<img src=x onerror=alert(1)>"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# suite s: m1 (lower, complexity) and m2 (higher, faithfulness); the hostile method has no m2 value.
# m2's values sort differently as numbers (9 < 10 < 100) and as text ("10" < "100" < "9").
S_CELLS = [("a", "m1", "lower", "complexity", 0.5), ("b", "m1", "lower", "complexity", 0.25),
           ("c", "m1", "lower", "complexity", 2.0), (HOSTILE, "m1", "lower", "complexity", 1.0),
           ("a", "m2", "higher", "faithfulness", 9.0), ("b", "m2", "higher", "faithfulness", 10.0),
           ("c", "m2", "higher", "faithfulness", 100.0)]
T_CELLS = [("a", "m1", "lower", "complexity", 3.0), ("b", "m1", "lower", "complexity", 1.0)]


def board_rows() -> pd.DataFrame:
    return pd.concat([make_rows(S_CELLS), make_rows(T_CELLS, suite="t", dataset="digits")], ignore_index=True)


def write_page(root: Path, rows: pd.DataFrame | None = None) -> Path:
    """The board of ``board_rows`` as the site ``root/board/`` (front ``index.html``, suite pages
    ``s.html`` and ``t.html``, a page per method and per metric), its plots in ``root/plots`` and (as
    the stats will add) a section of suite s's page tagged with a category. Returns the front."""
    (root / "plots").mkdir(parents=True, exist_ok=True)
    plots = []
    for suite, colour in (("s", "red"), ("t", "blue")):
        PILImage.new("RGB", (64, 48), colour).save(root / "plots" / f"{suite} plot.png")
        plots.append((f"Plot of {HOSTILE} ({suite})", f"plots/{suite} plot.png"))
    site = board_site(board_rows() if rows is None else rows, ["s", "t"], "bench leaderboard s t",
                      config=CONFIG, plots=plots, profiles=True)
    site.pages["s"].sections.append(Section("faithfulness-only", "Faithfulness only", 2,
                                            [Paragraph([("shown with the faithfulness filter",)])],
                                            category="faithfulness"))
    write_site(site, Layout(root / "leaderboard.md", root / "board" / "index.html", root / "board"))
    return root / "board" / "index.html"


def site_texts(root: Path) -> dict[str, str]:
    """Every HTML page under ``root/board``, by its path there."""
    return {p.relative_to(root / "board").as_posix(): p.read_text(encoding="utf-8")
            for p in sorted((root / "board").rglob("*.html"))}


class Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer reads them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_escapes_every_name(tmp_path):
    rows = board_rows()
    rows.loc[rows["suite"] == "t", "suite"] = 't" onmouseover="alert(2)'
    write_page(tmp_path, rows)
    pages = site_texts(tmp_path)
    # file names from slugs, whatever the names
    assert sorted(pages) == ["index.html", "method/a.html", "method/b.html", "method/c.html",
                             "method/img-src-x-onerror-alert-1.html", "metric/m1.html", "metric/m2.html", "s.html",
                             "t-onmouseover-alert-2.html"]
    for name, text in pages.items():
        tags = Tags(text).tags
        assert not [(t, a) for t, a in tags if any(k.startswith("on") for k in a)], name  # no event handler
        assert [t for t, _ in tags].count("script") == 1
    assert [a["src"] for t, a in Tags(pages["s.html"]).tags if t == "img"] == ["../plots/s%20plot.png"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages["index.html"]
    assert 'data-suite="t&quot; onmouseover=&quot;alert(2)"' in pages["index.html"]
    assert 'href="t-onmouseover-alert-2.html"' in pages["index.html"]
    assert 'href="method/img-src-x-onerror-alert-1.html"' in pages["index.html"]
    assert "<strong>&lt;img src=x onerror=alert(1)&gt;</strong>" in pages["method/img-src-x-onerror-alert-1.html"]


def test_page_bytes_depend_only_on_the_results(tmp_path):
    write_page(tmp_path / "a")
    write_page(tmp_path / "b", board_rows().sample(frac=1, random_state=0))
    assert site_texts(tmp_path / "a") == site_texts(tmp_path / "b")


def test_page_fetches_nothing(tmp_path):
    write_page(tmp_path)
    for text in site_texts(tmp_path).values():
        links = [v for _, a in Tags(text).tags for k, v in a.items() if k in ("src", "href") and v]
        assert links and all(not v.startswith(("http:", "https:", "//", "data:")) for v in links)
        assert "http://" not in text and "https://" not in text and "@import" not in text and "url(" not in text


class Tables(HTMLParser):
    """The text of every table's header and body cells, row by row (entities decoded, as a browser shows)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def shown_text(cell: str) -> str:
    """A Markdown cell's text as shown: bold and link syntax dropped, escapes undone."""
    cell = re.sub(r"^\*\*(.*)\*\*$", r"\1", cell)
    cell = re.sub(r"\[((?:\\.|[^\]\\])*)\]\([^)\s]*\)", r"\1", cell)
    return html.unescape(re.sub(r"\\([*_\[\]])", r"\1", cell))


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown's tables, each cell as shown (escape_md backslash-escapes * _ [ ] and writes the
    rest as HTML entities)."""
    tables, current = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = []
            tables.append(current)
        if not line.startswith("|---"):
            cells = line[2:-2].split(" | ")
            current.append([shown_text(c) for c in cells])
    return tables


def test_page_and_markdown_show_the_same_tables(tmp_path):
    rows = board_rows()
    for suite, g in rows.groupby("suite"):
        (tmp_path / "results" / suite).mkdir(parents=True)
        for j, job in g.groupby("job_id"):
            job.to_parquet(tmp_path / "results" / suite / f"{j}.parquet")
    out, _, _ = write_board(tmp_path / "results", ["s", "t"], tmp_path / "b" / "board.md", plots=False)
    page = page_path(tmp_path / "results", out)
    assert page == tmp_path / "b" / "board.html" and pages_dir(tmp_path / "results", out) == tmp_path / "b" / "board"
    md = markdown_tables(out.read_text(encoding="utf-8"))
    assert len(md) == 2 and Tables(page.read_text(encoding="utf-8")).tables == md  # the front: a table per suite
    assert [row[1] for row in md[0]].count(HOSTILE) == 1  # the summary lists it once, as text
    for suite, tables in (("s", 10), ("t", 9)):
        # its summary, the ties (one block: no pair told apart), the track's overview, a table per category
        # and its cost, reliability, concordance, metrics, methods
        md = markdown_tables((out.parent / "board" / f"{suite}.md").read_text(encoding="utf-8"))
        assert len(md) == tables and md[1][0][0] == "tied pair"
        assert Tables((out.parent / "board" / f"{suite}.html").read_text(encoding="utf-8")).tables == md

    write_board(tmp_path / "results", ["s", "t"], tmp_path / "c" / "board.md", plots=False, html=False)
    assert (tmp_path / "c" / "board.md").exists() and not (tmp_path / "c" / "board.html").exists()
    assert page_path("results", "leaderboard.md") == Path("results/board/index.html")


# -- in the browser -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="browser tests need selenium: "
                                    "pip install -e '.[test]'")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not CHROMEDRIVER.exists() or not chromium:
        pytest.skip("browser tests need Chromium: apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    options.binary_location = chromium
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def column_texts(table, index: int) -> list[str]:
    rows = table.find_elements("css selector", "tbody tr")
    return [row.find_elements("css selector", "td")[index].text for row in rows]


def metric_table(browser, metric: str):
    """The track table whose header has ``metric``'s column."""
    return next(t for t in browser.find_elements("css selector", "section[id^='track'] table")
                if any(h.get_attribute("textContent").startswith(metric)  # textContent: hidden ones too
                       for h in t.find_elements("css selector", "thead th")))


def shown(browser, selector: str) -> list[bool]:
    return [e.is_displayed() for e in browser.find_elements("css selector", selector)]


def test_front_in_the_browser(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.support.ui import Select

    browser.get(write_page(tmp_path).as_uri())
    with pytest.raises(NoAlertPresentException):  # the hostile name's onerror never ran
        browser.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
    assert any(c.text == HOSTILE for c in browser.find_elements("css selector", "td"))
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "board.png"))

    suite, category = (Select(browser.find_element("id", i)) for i in ("filter-suite", "filter-category"))
    assert shown(browser, "section[data-suite]") == [True] * 2  # a summary per suite
    suite.select_by_value("t")
    assert shown(browser, "#suite-s") == [False] and shown(browser, "#suite-t") == [True]
    suite.select_by_value("")
    category.select_by_value("complexity")
    assert shown(browser, "#suite-s th[data-category='faithfulness']") == [False]
    assert shown(browser, "#suite-s th[data-category='complexity']") == [True]

    browser.find_element("css selector", "#suite-s p a").click()  # the suite's own page
    assert browser.current_url.endswith("/board/s.html")


def test_suite_page_in_the_browser(browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    browser.get((write_page(tmp_path).parent / "s.html").as_uri())
    # the only image is the suite's plot, and it loaded
    widths = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")
    assert widths == [64]

    track = metric_table(browser, "m2")
    heads = track.find_elements("css selector", "thead th")
    m2 = next(i for i, h in enumerate(heads) if h.text.startswith("m2"))
    methods = track.find_elements("css selector", "thead th button")[0]
    heads[m2].find_element("css selector", "button").click()
    assert heads[m2].get_attribute("aria-sort") == "ascending"
    assert column_texts(track, 0) == ["a", "b", "c", HOSTILE]  # 9 < 10 < 100, no value last
    heads[m2].find_element("css selector", "button").click()
    assert heads[m2].get_attribute("aria-sort") == "descending"
    assert column_texts(track, 0) == ["c", "b", "a", HOSTILE]  # no value stays last
    methods.click()
    assert heads[0].get_attribute("aria-sort") == "ascending" and heads[m2].get_attribute("aria-sort") == "none"
    assert [m for m in column_texts(track, 0) if m != HOSTILE] == ["a", "b", "c"]
    methods.click()
    assert [m for m in column_texts(track, 0) if m != HOSTILE] == ["c", "b", "a"]

    assert not browser.find_elements("id", "filter-suite")  # one suite: nothing to filter
    category = Select(browser.find_element("id", "filter-category"))
    category.select_by_value("complexity")
    assert not browser.find_element("id", "faithfulness-only").is_displayed()
    assert not track.is_displayed()  # the faithfulness table, whole
    assert shown(browser, "section[id^='track'] th[data-category='faithfulness']") == [False] * 3
    assert metric_table(browser, "m1").is_displayed()
    category.select_by_value("faithfulness")
    assert browser.find_element("id", "faithfulness-only").is_displayed() and track.is_displayed()
    assert not metric_table(browser, "m1").is_displayed()


def test_a_second_bench_leaderboard_writes_the_same_bytes(tmp_path, monkeypatch):
    """`bench leaderboard` run twice, in two folders with the same results, writes the same front and
    pages byte for byte; each front table links its suite's page, in Markdown and in HTML."""
    from bench.cli import main

    written = []
    for name in ("a", "b"):
        root = tmp_path / name
        for suite, g in board_rows().groupby("suite"):
            (root / "results" / suite).mkdir(parents=True)
            for j, job in g.groupby("job_id"):
                job.to_parquet(root / "results" / suite / f"{j}.parquet")
        monkeypatch.chdir(root)
        for _ in range(2):
            assert main(["leaderboard", "s", "t", "--results", "results", "--out", "out/leaderboard.md",
                         "--no-plots"]) == 0
        written.append({p.relative_to(root / "out").as_posix(): p.read_bytes()
                        for p in sorted((root / "out").rglob("*")) if p.is_file()})
    assert written[0] == written[1]
    assert sorted(written[0]) == ["board/.leaderboard.md.written", "board/method/a.html", "board/method/b.html",
                                  "board/method/c.html",
                                  "board/method/img-src-x-onerror-alert-1.html", "board/metric/m1.html",
                                  "board/metric/m2.html", "board/s.html", "board/s.md", "board/t.html", "board/t.md",
                                  "leaderboard.html", "leaderboard.md"]
    assert b"](board/s.md)" in written[0]["leaderboard.md"] and b'href="board/s.html"' in written[0]["leaderboard.html"]
    assert b"](../leaderboard.md)" in written[0]["board/s.md"]
    # the Markdown links Markdown pages only: the method and metric pages are HTML, a forge shows their source
    assert not any(b".html" in text for path, text in written[0].items() if path.endswith(".md"))


def test_method_and_metric_pages(tmp_path):
    write_page(tmp_path)
    pages = site_texts(tmp_path)
    a = Tables(pages["method/a.html"]).tables
    assert [row[0] for row in a[0][1:]] == ["s", "t"]  # its rank in each suite's summary
    assert len(a[1]) == 1 + 2  # a row per track it ran on
    assert 'href="../s.html"' in pages["method/a.html"] and 'href="../index.html"' in pages["method/a.html"]
    m2 = Tables(pages["metric/m2.html"]).tables
    assert m2[1][0] == ["track", "methods", "pairs told apart", "letter groups", "leader", "MDE"]
    assert m2[1][1][1] == "3" and m2[1][1][4] == "c"  # m2 (higher is better): c leads a, b
    # the suite page links each metric to its page, the front each method
    assert 'href="metric/m2.html"' in pages["s.html"] and 'href="method/a.html"' in pages["index.html"]


def test_front_is_a_heatmap_with_the_value_on_focus(tmp_path):
    front = Tags(site_texts(write_page(tmp_path).parent.parent)["index.html"]).tags
    cells = [a for t, a in front if t == "td" and "data-tip" in a]
    assert cells and all(a["tabindex"] == "0" and a["title"] == a["data-tip"] for a in cells)
    assert all(any(c.startswith("tone-") for c in a["class"].split()) for a in cells)
    assert any("mean rank" in a["data-tip"] for a in cells)


@pytest.mark.parametrize("width", [1400, 375])
def test_no_page_scrolls_sideways(browser, tmp_path, width):
    """At desktop and phone width no page of the site scrolls horizontally: a wide table scrolls inside
    its own box."""
    write_page(tmp_path)
    browser.set_window_size(width, 900)
    inside = False
    try:
        for name in site_texts(tmp_path):
            browser.get((tmp_path / "board" / name).as_uri())
            viewport, page = browser.execute_script(
                "return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
            assert page <= viewport, f"{name} scrolls sideways at {width} px ({page} > {viewport})"
            boxes = browser.execute_script("return Array.from(document.querySelectorAll('.table-wrap'))"
                                           ".map(b => b.getBoundingClientRect().right)")
            assert all(right <= viewport + 0.5 for right in boxes), name
            inside |= browser.execute_script("return Array.from(document.querySelectorAll('.table-wrap'))"
                                             ".some(b => b.scrollWidth > b.clientWidth)")
        assert inside or width > 1000  # at phone width some table is wider than the screen and scrolls in its box
    finally:
        browser.set_window_size(1280, 900)


def test_tables_sort_from_the_keyboard_and_cells_explain_themselves_on_focus(browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    browser.get(write_page(tmp_path).as_uri())
    table = browser.find_element("css selector", "#suite-s table")
    button = table.find_elements("css selector", "thead th button")[1]  # method
    button.send_keys(Keys.ENTER)  # a focused button activates on Enter, as a click
    assert table.find_elements("css selector", "thead th")[1].get_attribute("aria-sort") == "ascending"
    assert [m for m in column_texts(table, 1) if m != HOSTILE] == ["a", "b", "c"]
    button.send_keys(Keys.SPACE)
    assert table.find_elements("css selector", "thead th")[1].get_attribute("aria-sort") == "descending"
    assert [m for m in column_texts(table, 1) if m != HOSTILE] == ["c", "b", "a"]

    cell = table.find_element("css selector", "td[data-tip]")
    browser.execute_script("arguments[0].focus()", cell)
    assert browser.switch_to.active_element == cell
    shown = browser.execute_script("return getComputedStyle(arguments[0], '::after').content", cell)
    assert "mean rank" in shown and cell.get_attribute("data-tip") in shown


def test_every_image_of_the_site_loads(browser, tmp_path):
    write_page(tmp_path)
    seen = 0
    for name in site_texts(tmp_path):
        browser.get((tmp_path / "board" / name).as_uri())
        sizes = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")
        assert all(sizes), f"{name}: an image did not load"
        seen += len(sizes)
    assert seen >= 2  # the two suites' plots


def test_pages_of_a_method_no_longer_on_the_board_are_deleted_and_nothing_else(tmp_path):
    """A render without method c removes c's page once no board's record of that folder lists it (each
    board records what it wrote); a file a person put in the folder is never touched."""
    def render(rows: pd.DataFrame, out: str) -> Path:
        results = tmp_path / f"results-{out}"
        shutil.rmtree(results, ignore_errors=True)
        for suite, g in rows.groupby("suite"):
            (results / suite).mkdir(parents=True)
            for j, job in g.groupby("job_id"):
                job.to_parquet(results / suite / f"{j}.parquet")
        front, _, _ = write_board(results, ["s", "t"], tmp_path / "site" / f"{out}.md", plots=False)
        return front.parent / "board"

    rows, without_c = board_rows(), board_rows().query("method != 'c'")
    pages = render(rows, "one")
    (pages / "notes.txt").write_text("mine")
    assert render(rows, "two") == pages  # a second board writing into the same folder
    render(without_c, "one")
    assert (pages / "method" / "c.html").exists()  # board two still shows c
    assert "method/c.html" not in (pages / ".one.md.written").read_text().splitlines()
    render(without_c, "two")
    assert not (pages / "method" / "c.html").exists()
    assert (pages / "method" / "a.html").exists() and (pages / "notes.txt").read_text() == "mine"
