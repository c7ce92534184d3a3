"""The board's identity and statistics settings, from ``registry/board.toml``.

Its own module because the statistics (``stats``), the Markdown (``render``), the orchestration
(``build``) and the claims report all read it, and none of them should import another to get it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bench import registry
from bench.errors import ResultsError


@dataclass(frozen=True)
class BoardConfig:
    version: str = "0.0.0"
    title: str = "GradBench leaderboard"
    url: str = ""
    bootstrap_resamples: int = 1000
    bootstrap_seed: int = 0
    confidence: float = 0.95  # also the tests' level: α = 1 − confidence (Holm, Friedman, Nemenyi)
    noise_resilience_max: float = 0.5  # NR above it flags a (track, metric) (bench.board.reliability)
    suites: tuple[str, ...] = ("default",)  # what `bench leaderboard` shows when no suite is named

    @property
    def alpha(self) -> float:
        """The tests' significance level, 1 − confidence (rounded: 1 − 0.95 is not 0.05 in floats)."""
        return round(1.0 - self.confidence, 12)


def load_board_config(path: Path | None = None) -> BoardConfig:
    path = path or registry.REGISTRY_DIR / "board.toml"
    if not path.exists():
        raise ResultsError(f"{path} is missing; it declares the board version (version = \"1.0.0\")")
    with path.open("rb") as f:
        spec = tomllib.load(f)
    known = set(BoardConfig.__dataclass_fields__)
    unknown = set(spec) - known
    if unknown:
        raise ResultsError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(spec.get("version", ""))):
        raise ResultsError(f"{path}: version must be semver MAJOR.MINOR.PATCH, got {spec.get('version')!r}")
    if "suites" in spec:
        spec["suites"] = tuple(spec["suites"])
    return BoardConfig(**spec)
