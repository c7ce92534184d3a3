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

from bench.board.build import page_path, write_board
from bench.board.document import Paragraph, Section
from bench.board.html import relinker, to_html
from bench.board.render import board_document

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
    """The board of ``board_rows`` as the page ``root/board/index.html``, its plots in ``root/plots`` and
    (as the stats will add) a section tagged with a category."""
    (root / "plots").mkdir(parents=True, exist_ok=True)
    plots = []
    for suite, colour in (("s", "red"), ("t", "blue")):
        PILImage.new("RGB", (64, 48), colour).save(root / "plots" / f"{suite} plot.png")
        plots.append((f"Plot of {HOSTILE} ({suite})", f"plots/{suite} plot.png"))
    doc = board_document(board_rows() if rows is None else rows, ["s", "t"], "bench leaderboard s t",
                         config=CONFIG, plots=plots)
    doc.sections.append(Section("faithfulness-only", "Faithfulness only", 2,
                                [Paragraph([("shown with the faithfulness filter",)])], category="faithfulness"))
    page = root / "board" / "index.html"
    page.parent.mkdir(exist_ok=True)
    page.write_text(to_html(doc, relinker(root, page.parent)), encoding="utf-8")
    return page


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
    text = write_page(tmp_path, rows).read_text(encoding="utf-8")
    tags = Tags(text).tags
    assert [a["src"] for t, a in tags if t == "img"] == ["../plots/s%20plot.png", "../plots/t%20plot.png"]
    assert not [(t, a) for t, a in tags if any(k.startswith("on") for k in a)]  # no event handler anywhere
    assert [t for t, _ in tags].count("script") == 1
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert 'data-suite="t&quot; onmouseover=&quot;alert(2)"' in text


def test_page_bytes_depend_only_on_the_results(tmp_path):
    a = write_page(tmp_path / "a").read_bytes()
    b = write_page(tmp_path / "b", board_rows().sample(frac=1, random_state=0)).read_bytes()
    assert a == b


def test_page_fetches_nothing(tmp_path):
    text = write_page(tmp_path).read_text(encoding="utf-8")
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


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown's tables, each cell un-escaped (escape_md backslash-escapes * _ [ ] and writes the
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
            current.append([html.unescape(re.sub(r"\\([*_\[\]])", r"\1", c)) for c in cells])
    return tables


def test_page_and_markdown_show_the_same_tables(tmp_path):
    rows = board_rows()
    for suite, g in rows.groupby("suite"):
        (tmp_path / "results" / suite).mkdir(parents=True)
        for j, job in g.groupby("job_id"):
            job.to_parquet(tmp_path / "results" / suite / f"{j}.parquet")
    out, _, _ = write_board(tmp_path / "results", ["s", "t"], tmp_path / "b" / "board.md", plots=False)
    page = page_path(tmp_path / "results", out)
    assert page == tmp_path / "b" / "board.html"
    md = markdown_tables(out.read_text(encoding="utf-8"))
    # two suite summaries and their ties (one block each: no pair told apart), two tracks, reliability,
    # concordance, metrics, methods
    assert len(md) == 10 and [t[0][0] for t in md[1:4:2]] == ["tied pair", "tied pair"]
    assert Tables(page.read_text(encoding="utf-8")).tables == md
    assert [row[1] for row in md[0]].count(HOSTILE) == 1  # the summary lists it once, as text

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


def test_page_in_the_browser(browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.support.ui import Select

    browser.get(write_page(tmp_path).as_uri())
    with pytest.raises(NoAlertPresentException):  # the hostile name's onerror never ran
        browser.switch_to.alert  # noqa: B018 (the property raises when no alert is open)
    # the hostile name is text in its cells; the only images are the two plots, and both loaded
    cells = browser.find_elements("css selector", "td")
    assert any(c.text == HOSTILE for c in cells)
    widths = browser.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")
    assert widths == [64, 64]

    track = browser.find_element("css selector", "section[id^='track'][data-suite='s'] table")
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

    ARTIFACTS.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(ARTIFACTS / "board.png"))

    def shown(selector: str) -> list[bool]:
        return [e.is_displayed() for e in browser.find_elements("css selector", selector)]

    suite, category = (Select(browser.find_element("id", i)) for i in ("filter-suite", "filter-category"))
    assert shown("section[data-suite]") == [True] * 6  # two suite summaries, two tracks, two plots
    suite.select_by_value("t")
    assert shown("section[data-suite='s']") == [False] * 3 and shown("section[data-suite='t']") == [True] * 3
    assert shown("#summary-s") == [False] and shown("#summary-t") == [True]
    suite.select_by_value("")
    category.select_by_value("complexity")
    assert not browser.find_element("id", "faithfulness-only").is_displayed()
    faithfulness = "section[id^='track'][data-suite='s'] th[data-category='faithfulness']"
    assert shown(faithfulness) == [False, False]  # rank and m2
    assert all(shown("section[id^='track'][data-suite='s'] th[data-category='complexity']"))
    category.select_by_value("faithfulness")
    assert browser.find_element("id", "faithfulness-only").is_displayed()
    assert not any(shown("section[id^='track'][data-suite='s'] td[data-category='complexity']"))
