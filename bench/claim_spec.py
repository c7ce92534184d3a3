"""The shape of a suite's ``[[claims]]`` tables, checked when the suite loads.

Kept apart from ``bench.claims`` (which judges claims with the board's bootstrap) so the suite
loader validates claims without importing the board: ``bench.suite`` → ``bench.claim_spec`` only,
while ``bench.claims`` → ``bench.board`` → ``bench.suite``, one direction.
"""

from __future__ import annotations

from typing import Any

from bench.errors import SuiteError

KINDS = ("trend", "compare", "faster_drop", "extreme", "within", "cap_met")
# The keys each kind needs beside 'id' (and 'metric', which every kind but cap_met needs).
NEEDS = {"trend": ("along",), "compare": ("a", "b"), "faster_drop": ("along", "versus"),
         "extreme": ("along", "at"), "within": ("a", "range"), "cap_met": ()}


def check_claims(claims: list[dict[str, Any]]) -> None:
    for i, c in enumerate(claims):
        kind = c.get("kind", "trend") if isinstance(c, dict) else None
        if not isinstance(c, dict) or "id" not in c or ("metric" not in c and kind != "cap_met"):
            raise SuiteError(f"claims[{i}] needs at least 'id' and 'metric'")
        need = NEEDS.get(kind)
        if need is None:
            raise SuiteError(f"claims[{i}] ('{c['id']}'): kind must be one of {KINDS}")
        missing = [k for k in need if k not in c]
        if missing:
            raise SuiteError(f"claims[{i}] ('{c['id']}'): a {kind} claim needs {', '.join(missing)}")
