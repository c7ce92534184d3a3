"""Controls as reference rows, and the bar every method has to clear.

A method is a control when its registry entry says so (``register_method(control=…)``, read from
the rows' ``method`` column; never guessed from a name or label): ``random`` (pure noise,
``control="noise"``) and ``sobel`` (an edge map, ``control="edge"``). The board shows a control's
cells as a reference row and never ranks it: no rank, no letters, not in a category or overall
rank, not in a suite's Friedman/Nemenyi summary, CD diagram or concordance. The noise control is
the *bar*: on each metric a method is compared with it by the same paired Wilcoxon test the ranks
use (Holm over the metric's pairs with a control, a family of their own), and a method not
significantly better is marked ``BELOW_BAR`` on its cell; where the metric was not tested (missing
per-sample values, too few pairs) a 95% CI entirely on the better side of the bar's counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import registry
from bench.board.stats import TRACK
from bench.methods.base import CONTROL_NOISE

CONTROL = "control"  # the column: the method's declared control kind, '' for a method that competes
BELOW_BAR = "⊘"  # on a cell: the method is not better than the bar (the noise control) on this metric
NOT_MEASURED = "not measured"
BAR_COLUMNS = [*TRACK, "metric", "method_label", "verdict", "p", "basis", "clears"]


def control_kind(method: str) -> str:
    """The ``control`` a registered method declares; '' for an explanation method or one the registry
    does not know (a results-only submission)."""
    if not isinstance(method, str) or method not in registry.methods:
        return ""
    return str(registry.methods.get(method).meta.get(CONTROL, "") or "")


def with_controls(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the ``control`` column (from each row's registered ``method``), if absent."""
    if CONTROL in rows:
        return rows
    if "method" not in rows:
        return rows.assign(**{CONTROL: ""})
    kinds = {m: control_kind(m) for m in rows["method"].dropna().unique()}
    return rows.assign(**{CONTROL: rows["method"].map(kinds).fillna("").to_numpy()})


def controls_of(table: pd.DataFrame) -> dict[str, str]:
    """Label → control kind of the controls in ``table`` (rows or cells with a ``control`` column)."""
    if CONTROL not in table or not len(table):
        return {}
    marked = table[table[CONTROL].fillna("") != ""]
    return dict(sorted(zip(marked["method_label"], marked[CONTROL], strict=True)))


def competitors(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``table`` that are not controls: what the board ranks."""
    return table[table[CONTROL].fillna("") == ""] if CONTROL in table else table


def bar_of(controls: dict[str, str]) -> str | None:
    """The label of the noise control (the first by name if several), None if the board has none."""
    return next((label for label, kind in sorted(controls.items()) if kind == CONTROL_NOISE), None)


def ordered_controls(controls: dict[str, str]) -> tuple[str, ...]:
    """The controls, the bar first, then by name."""
    bar = bar_of(controls)
    return tuple(sorted(controls, key=lambda c: (c != bar, c)))


# -- a method against a control ----------------------------------------------------------------------
def verdict_from_test(t: pd.Series, method: str) -> tuple[str, float, float]:
    """(``better`` | ``not different`` | ``worse``, Holm p, rank-biserial effect > 0 when ``method`` is
    better) of ``method`` in the paired test ``t`` against another."""
    sign = 1.0 if t["method_a"] == method else -1.0
    if not t["significant"]:
        return "not different", float(t["p_holm"]), sign * float(t["effect"])
    return ("better" if t["better"] == method else "worse"), float(t["p_holm"]), sign * float(t["effect"])


def verdict_from_ci(mine: pd.Series, other: pd.Series) -> str:
    """``better`` when ``mine``'s CI lies entirely on the better side of ``other``'s, ``worse`` when
    entirely on the worse side, else ``not different``."""
    flip = mine["direction"] == "lower"
    lo, hi = (-mine["high"], -mine["low"]) if flip else (mine["low"], mine["high"])
    olo, ohi = (-other["high"], -other["low"]) if flip else (other["low"], other["high"])
    return "better" if lo > ohi else "worse" if hi < olo else "not different"


def pairs_by_key(tests: pd.DataFrame) -> dict[tuple, pd.Series]:
    """(track…, metric, frozenset of the two labels) → the pair's test row."""
    if not len(tests):
        return {}
    indexed = tests.set_index([*TRACK, "metric", "method_a", "method_b"], drop=False)
    return {(*k[:-2], frozenset(k[-2:])): t for k, t in indexed.iterrows()}


def versus(key: tuple, by_method: pd.DataFrame, pairs: dict[tuple, pd.Series], method: str,
           control: str) -> tuple[str, float, float, str]:
    """(verdict, p, effect, basis) of ``method`` against ``control`` on one (track, metric): the paired
    test where it ran (basis ``wilcoxon-holm``), else CI comparison (``ci-overlap``); ``not measured``
    where either has no cell."""
    if method not in by_method.index or control not in by_method.index:
        return NOT_MEASURED, np.nan, np.nan, "ci-overlap"
    t = pairs.get((*key, frozenset((method, control))))
    if t is not None and np.isfinite(t["p"]):
        return (*verdict_from_test(t, method), "wilcoxon-holm")
    return verdict_from_ci(by_method.loc[method], by_method.loc[control]), np.nan, np.nan, "ci-overlap"


def bar_verdicts(cells: pd.DataFrame, tests: pd.DataFrame) -> pd.DataFrame:
    """Per (track, metric, competing method): its verdict against the bar (``BAR_COLUMNS``; ``clears``:
    significantly better). Empty where the cells hold no noise control."""
    bar = bar_of(controls_of(cells))
    if bar is None:
        return pd.DataFrame(columns=BAR_COLUMNS)
    pairs, out = pairs_by_key(tests), []
    for key, g in cells.groupby([*TRACK, "metric"], sort=True):
        by_method = g.set_index("method_label")
        if bar not in by_method.index:
            continue
        for method in sorted(competitors(g)["method_label"]):
            verdict, p, _, basis = versus(key, by_method, pairs, method, bar)
            out.append({**dict(zip([*TRACK, "metric"], key, strict=True)), "method_label": method,
                        "verdict": verdict, "p": p, "basis": basis, "clears": verdict == "better"})
    return pd.DataFrame(out, columns=BAR_COLUMNS)


def below_bar(verdicts: pd.DataFrame) -> set[tuple]:
    """(track…, metric, method) of the cells marked ``BELOW_BAR``."""
    missed = verdicts[~verdicts["clears"].astype(bool)]
    return {tuple(r) for r in missed[[*TRACK, "metric", "method_label"]].itertuples(index=False, name=None)}
