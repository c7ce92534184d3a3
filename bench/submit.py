"""Submit a new method in one command: validate it, run the standard suite for it alone, update the board.

``bench submit path/to/file.py:function --name NAME`` (or ``package.module:function``, or the name of an
installed entry point of group ``bench.methods``). The function follows the method contract of
``bench.methods.base``; it may leave out the context arguments it does not use (``x_range``,
``generator``, ``chunk_size``). Nothing is written until the method passes every check and every job
of the suite ran: a refusal is one line, and results and board stay byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench import registry
from bench.board import SUBMISSIONS, load_board_config, write_board
from bench.board.build import PUBLISHED
from bench.errors import GradBenchError, MethodOutputError
from bench.methods.base import _CONTEXT_ARGS, Method, register_method
from bench.models.build import recipe_data, scored_model, untrained_model
from bench.run.runner import constant_maps
from bench.suite import Suite, expand, load_suite, resolve_suite_path

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
VALIDATION_INPUTS = 4
SUBMITTED = "submitted"  # registry entry meta key: the entry came from `bench submit`
SOURCE = "source"  # RESULTS/submissions/NAME/source/: a copy of the submitted file


class SubmissionError(GradBenchError):
    """A refused submission: the message is one line that names the fix."""

    def __init__(self, message: str):
        super().__init__("submission refused: " + one_line(message))


def one_line(text: object, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


@dataclass
class Submission:
    name: str
    folder: Path
    board: Path | None
    jobs: int
    rows: int
    seconds_per_map: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        board = f"; board {self.board}" if self.board else ""
        lines = [f"submitted '{self.name}': {self.jobs} jobs, {self.rows} result rows in {self.folder}{board} "
                 f"({self.seconds_per_map:.3g} s per map at validation)"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


# -- loading the function -----------------------------------------------------------------------
def load_function(spec: str) -> Callable[..., Tensor]:
    """``file.py:function``, ``package.module:function`` or an entry point name of ``bench.methods``."""
    if ":" in spec:
        where, _, attr = spec.rpartition(":")
        if where.endswith(".py") or os.sep in where or "/" in where:
            path = Path(where)
            if not path.is_file():
                raise SubmissionError(f"no file {path}; give path/to/file.py:function")
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            mod_spec = importlib.util.spec_from_file_location(f"gradbench_submission_{digest}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            try:
                mod_spec.loader.exec_module(module)
            except Exception as e:
                raise SubmissionError(f"importing {path} raised {type(e).__name__}: {e}") from None
        else:
            try:
                module = importlib.import_module(where)
            except Exception as e:
                raise SubmissionError(f"cannot import module '{where}' ({type(e).__name__}: {e})") from None
        fn = getattr(module, attr, None)
        if fn is None:
            raise SubmissionError(f"{where} has no attribute '{attr}'")
    else:
        eps = entry_points(group="bench.methods", name=spec)
        if not eps:
            raise SubmissionError(f"'{spec}' is neither path/to/file.py:function, package.module:function, "
                                  "nor an installed entry point of group bench.methods")
        try:
            fn = next(iter(eps)).load()
        except Exception as e:
            raise SubmissionError(f"loading entry point '{spec}' raised {type(e).__name__}: {e}") from None
    if not callable(fn):
        raise SubmissionError(f"{spec} is a {type(fn).__name__}, not a function")
    return fn


def adapt(fn: Callable[..., Tensor], params: dict[str, Any]) -> Callable[..., Tensor]:
    """Wrap ``fn`` as a registrable method: it gets only the context arguments it declares (so
    ``fn(model, x, target)`` is valid), and the wrapper's signature names its parameters, which is
    what the registry and the suite check ``--params`` against."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise SubmissionError("cannot read the function's signature; define it with def") from None
    ps = list(sig.parameters.values())
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 and not any(p.kind is p.VAR_POSITIONAL for p in ps):
        raise SubmissionError(f"the function takes ({', '.join(sig.parameters)}); a method takes (model, x, "
                              "target, *, x_range, generator, chunk_size, **params)")
    var_kw = any(p.kind is p.VAR_KEYWORD for p in ps)
    wanted = set(_CONTEXT_ARGS) if var_kw else _CONTEXT_ARGS & set(sig.parameters)
    own = [p.replace(kind=p.KEYWORD_ONLY) for p in ps[3:] if p.name not in _CONTEXT_ARGS
           and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if var_kw:
        own += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY) for k in sorted(params)
                if k not in {p.name for p in own}]
    unknown = set(params) - {p.name for p in own}
    if unknown:
        raise SubmissionError(f"the function takes no parameter {', '.join(sorted(unknown))}; "
                              f"it takes: {', '.join(p.name for p in own) or 'none'}")

    def method(model, x, target, **kw):
        return fn(model, x, target, **{k: v for k, v in kw.items() if k in wanted or k not in _CONTEXT_ARGS})

    P = inspect.Parameter
    method.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [P(n, P.POSITIONAL_OR_KEYWORD) for n in ("model", "x", "target")]
        + [P(n, P.KEYWORD_ONLY) for n in ("x_range", "generator", "chunk_size")] + own)
    method.__doc__ = fn.__doc__
    method.__name__ = getattr(fn, "__name__", "method")
    return method


# -- validation ---------------------------------------------------------------------------------
@dataclass
class Validation:
    seconds_per_map: float
    stochastic: bool


def _call(method: Method, model, x: Tensor, target: Tensor, x_range, global_seed: int = 1
          ) -> tuple[Tensor, torch.Generator]:
    """One call with a fresh generator seeded 0, the global RNG seeded ``global_seed``: a method that
    uses the global RNG instead of the generator gives different maps for different global seeds."""
    torch.manual_seed(global_seed)
    gen = torch.Generator(device=x.device).manual_seed(0)
    try:
        out = method(model, x, target, x_range=x_range, generator=gen)
    except MethodOutputError as e:  # Method.__call__ checked the maps: shape, dtype, device, finite
        raise SubmissionError(str(e)) from None
    except Exception as e:
        raise SubmissionError(f"method '{method.name}' raised {type(e).__name__}: {e} "
                              f"(on a batch of {len(x)} inputs of shape {tuple(x.shape[1:])})") from None
    return out, gen


def _too_slow(method: Method, seconds: float, device: torch.device, limit: float) -> SubmissionError:
    return SubmissionError(f"method '{method.name}' takes {seconds:.3g} s per map on {device.type}, over the "
                           f"limit of {limit:g} s (--max-seconds)")


def validate(method: Method, model, x: Tensor, target: Tensor, x_range, max_seconds_per_map: float,
             progress: Callable[[str], None] | None = None) -> Validation:
    """Shape, dtype, device, finiteness, no input mutation, determinism, batch = items, speed.

    The speed is that of the first call (no untimed warm-up): a method over the limit is refused
    after one call rather than after every check. ``progress`` receives a line before each step."""
    say = progress or (lambda _: None)
    x_before = x.clone()
    say(f"validating '{method.name}': first call on {len(x)} inputs (timed; limit {max_seconds_per_map:g} s/map)")
    t0 = time.perf_counter()
    maps, gen = _call(method, model, x, target, x_range, global_seed=1)
    first = time.perf_counter() - t0
    if first / len(x) > max_seconds_per_map:
        raise _too_slow(method, first / len(x), x.device, max_seconds_per_map)
    say(f"validating '{method.name}': {first / len(x):.3g} s per map; checking determinism and batch = items")
    if not torch.equal(x, x_before):
        raise SubmissionError(f"method '{method.name}' modified its input x in place; work on a copy")
    constant = constant_maps(maps)
    if constant.any():  # a constant map explains nothing, and EF would rank it first
        raise SubmissionError(f"method '{method.name}' returns a constant map (all elements equal) on "
                              f"{int(constant.sum())} of {len(x)} validation inputs; it must explain each input")
    stochastic = not torch.equal(gen.get_state(), torch.Generator(device=x.device).manual_seed(0).get_state())

    t0 = time.perf_counter()
    again, _ = _call(method, model, x, target, x_range, global_seed=2)
    seconds = min(first, time.perf_counter() - t0) / len(x)
    if not isinstance(again, Tensor) or again.shape != maps.shape or not torch.equal(again, maps):
        same_shape = isinstance(again, Tensor) and again.shape == maps.shape
        diff = f"{(again - maps).abs().max().item():.3g}" if same_shape else "a different shape"
        raise SubmissionError(f"method '{method.name}' is not deterministic under a fixed generator: two calls "
                              f"with torch.Generator seeded 0 differ by up to {diff}; draw random numbers "
                              "with the `generator` argument, not torch's global RNG")

    if not stochastic:  # a method drawing noise per batch cannot match item by item; the rest must
        items = torch.cat([_call(method, model, x[i : i + 1], target[i : i + 1], x_range)[0]
                           for i in range(len(x))])
        scale = maps.abs().max().item() or 1.0
        if items.shape != maps.shape or not torch.allclose(items, maps, rtol=1e-4, atol=1e-5 * scale):
            diff = f"{(items - maps).abs().max().item():.3g}" if items.shape == maps.shape else "a different shape"
            raise SubmissionError(f"method '{method.name}' gives a batch different maps than its items one by one "
                                  f"(max difference {diff}); inputs must not influence each other's maps "
                                  "(no batch-wide normalisation)")
    return Validation(seconds, stochastic)


def validation_batch(suite: Suite, device: torch.device):
    """An untrained model of the suite's first recipe and a few of its test inputs: the checks are about
    the method's contract, not the model's accuracy, so nothing is trained here. The model is prepared
    as the runner prepares it (memory format included), so the method is checked as it will run."""
    job = suite.jobs[0]
    model = scored_model(untrained_model(job.recipe, device), job.output)
    data = recipe_data(job.recipe)
    x = data.x_test[:VALIDATION_INPUTS].to(device)
    target = data.y_test[:VALIDATION_INPUTS].to(device)
    return model, x, target, (data.x_min.to(device), data.x_max.to(device))


# -- the command --------------------------------------------------------------------------------
def _published(name: str) -> bool:
    """A name the registry already serves that is neither an earlier submission (whose entry says so)
    nor an installed plugin of the same name."""
    return (name in registry.methods and not registry.methods.get(name).meta.get(SUBMITTED)
            and not entry_points(group="bench.methods", name=name))


def _register(name: str, fn: Callable[..., Tensor], params: dict[str, Any], citation: str) -> None:
    """Register the submitted method, marked as a submission in its registry entry (so submitting it
    again is a replacement, not a clash with a published name)."""
    register_method(name, defaults=params, citation=citation)(fn)
    entry = registry.methods.get(name)
    registry.methods.add(replace(entry, meta={**entry.meta, SUBMITTED: True}))


def method_suite(suite_path: Path, name: str, params: dict[str, Any]) -> Suite:
    """The suite with its methods replaced by the submitted one (same suite name, so tracks merge)."""
    with suite_path.open("rb") as f:
        spec = tomllib.load(f)
    spec["methods"] = [{"name": name, "params": params}]
    try:
        return expand(spec, suite_path)
    except (GradBenchError, ValueError, TypeError) as e:
        raise SubmissionError(f"{suite_path}: {e}") from None


def submit(spec: str, name: str, *, params: str | dict[str, Any] = "{}", citation: str = "",
           replace: bool = False, suite: str = "default", results: Path | str = "results",
           out: Path | str | None = "leaderboard.md", device: str = "auto", max_seconds_per_map: float = 5.0,
           plots: bool = True, progress: bool = True) -> Submission:
    from bench.provenance import resolve_device

    results = Path(results)
    folder = _check_name(name, results, replace)
    params = _parse_params(params)

    fn = adapt(load_function(spec), params)
    suite_path = resolve_suite_path(suite)
    base = load_suite(str(suite_path))
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):  # validation reseeds the global RNG; give the caller's back
        validation = validate(Method(name, fn, params), *validation_batch(base, dev), max_seconds_per_map,
                              progress=(lambda line: print(line, file=sys.stderr, flush=True)) if progress else None)

    _register(name, fn, params, citation)
    sub = method_suite(suite_path, name, params)
    _run_into(folder, results, sub, device, progress, lambda staging: _write_record(
        staging, name, spec, params, citation, sub, validation))

    notes = []
    if validation.stochastic:
        notes.append("the method draws random numbers: batch-vs-items equality was not checked")
    if not (results / sub.name).is_dir():
        notes.append(f"no results of the other methods in {results / sub.name}; run 'bench run {suite}' "
                     "to rank against them")
    board = None
    if out is not None:
        board, plot_notes = _update_board(results, sub, base, out, plots)
        notes += plot_notes
    n_rows = sum(len(j.metrics) for j in sub.jobs)
    return Submission(name, folder, board, len(sub.jobs), n_rows, validation.seconds_per_map, notes)


def _check_name(name: str, results: Path, replace: bool) -> Path:
    """The submission's results folder, once ``name`` is well formed, not a published method's, and
    free (or ``replace`` given)."""
    if not NAME_RE.fullmatch(name):
        raise SubmissionError(f"--name '{name}' must be 1–64 letters, digits or _ . + - (starting with a "
                              "letter or digit)")
    if _published(name):
        raise SubmissionError(f"'{name}' is a published method (bench list methods); choose another --name")
    folder = results / SUBMISSIONS / name
    if folder.exists() and not replace:
        raise SubmissionError(f"a submission named '{name}' exists ({folder}); pass --replace to overwrite it")
    return folder


def _parse_params(params: str | dict[str, Any]) -> dict[str, Any]:
    """``--params``: a JSON object (as text, or already parsed)."""
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as e:
            raise SubmissionError(f"--params is not valid JSON ({e}); e.g. --params '{{\"n\": 10}}'") from None
    if not isinstance(params, dict):
        raise SubmissionError("--params must be a JSON object, e.g. '{\"n\": 10}'")
    return params


def _run_into(folder: Path, results: Path, sub: Suite, device: str, progress: bool,
              write_record: Callable[[Path], None]) -> None:
    """Run the submission's suite in a staging folder and move it to ``folder`` only when every job
    succeeded (with ``write_record``'s record): a failure leaves the results as they were."""
    from bench.run.runner import Runner

    staging = Path(tempfile.mkdtemp(dir=_mkdir(results), prefix=".submit-"))
    try:
        report = Runner(staging, device=device, progress=progress).run(sub)
        if report.failed:
            label, err = report.failed[0]
            raise SubmissionError(f"job {label} failed: {err} ({len(report.failed)} of {report.total} jobs "
                                  "failed; nothing was written)")
        write_record(staging)
        _move_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _update_board(results: Path, sub: Suite, base: Suite, out: Path | str,
                  plots: bool) -> tuple[Path | None, list[str]]:
    """Regenerate the board that shows the submission: the whole published board when it includes
    the submission's suite, else a board of that suite alone (never over the published one)."""
    published = list(load_board_config().suites)
    suites = published if sub.name in published else [sub.name]  # the whole board, when it shows this suite
    sanity = {s: load_suite(s).sanity for s in suites if s != sub.name} | {sub.name: base.sanity}
    board_out: Path | str | None = out
    if suites != published and Path(out).resolve() == PUBLISHED.resolve():
        board_out = None  # a board of the submission's suite alone: its own place, not the published board
    board, _, plot_notes = write_board(results, suites, board_out, plots=plots, sanity=sanity)
    return board, plot_notes


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_record(staging: Path, name: str, spec: str, params: dict[str, Any], citation: str, suite: Suite,
                  validation: Validation) -> None:
    where = spec.rpartition(":")[0]
    source = Path(where)
    copied = _source_file(spec)
    if copied is not None:  # the code behind the numbers, so the board can redraw the method's grids
        (staging / SOURCE).mkdir()
        shutil.copy2(copied, staging / SOURCE / copied.name)
    record = {"name": name, "source": spec, "params": params, "citation": citation, "suite": suite.name,
              "source_copy": f"{SOURCE}/{copied.name}" if copied is not None else "",
              "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else "",
              "seconds_per_map": validation.seconds_per_map, "stochastic": validation.stochastic,
              "submitted_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (staging / "submission.json").write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")


def _source_file(spec: str) -> Path | None:
    """The file a ``file.py:function`` or ``package.module:function`` spec names (None: an entry point)."""
    where = spec.rpartition(":")[0]
    if where and Path(where).is_file():
        return Path(where)
    try:
        found = importlib.util.find_spec(where) if where else None
    except (ImportError, ValueError):
        found = None
    origin = getattr(found, "origin", None)
    return Path(origin) if origin and Path(origin).is_file() else None


def withdraw(name: str, results: Path | str = "results") -> list[Path]:
    """Remove the submission ``name`` (its folder under ``RESULTS/submissions``); returns what was removed."""
    if not NAME_RE.fullmatch(name):
        raise SubmissionError(f"'{name}' is not a submission name (1–64 letters, digits or _ . + -)")
    folder = Path(results) / SUBMISSIONS / name
    if not folder.is_dir():
        known = sorted(p.name for p in (Path(results) / SUBMISSIONS).glob("*") if p.is_dir()
                       and not p.name.startswith("."))
        raise SubmissionError(f"no submission named '{name}' in {folder.parent}; submitted: "
                              f"{', '.join(known) or 'none'}")
    removed = sorted(p for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder)
    return [folder, *removed]


def _move_into_place(staging: Path, folder: Path) -> None:
    """Swap the staged results in (same filesystem: a rename); an older submission of the same name goes
    only once the new one is in place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if folder.exists():
        old = staging.parent / f"{staging.name}-old"
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
