"""GradBench's native metrics against Quantus 0.6 (with Captum explainers): values and wall time.

    PYTHONPATH=. python benchmarks/metrics_vs_quantus.py [--samples 64] [--device cpu] [--only cnn]
        [--steps 24] [--runs 20] [--noise 5]      # defaults: about 3-4 minutes on 2 CPU cores

Two models, untrained (the speed and the definitions are what is compared, not the models):
the zoo ``cnn-small`` on 32×32 shapes and timm ``resnet18`` (pretrained=False) on 64×64 shapes.
Both sides explain with the plain gradient (GradBench ``grad``; Quantus ``explain(method="Gradient",
reduce_axes=())``, i.e. Captum ``Saliency(abs=False)``) and get the same parameters, per-sample
normalisation included. Metrics that draw random subsets or noise (faithfulness correlation, max
sensitivity) draw their own, so their values agree in distribution, not digit for digit; the
tests check equality on the same draws. Prints a Markdown table; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.methods import create_method
from bench.metrics import MetricContext, create_metric
from bench.models.zoo import cnn_small

PER_SAMPLE = {"normalise_axes": [1, 2, 3]}


def metric_set(hw: int, steps: int, runs: int, noise: int) -> list[tuple[str, dict, str, dict, dict]]:
    """(native name, native params, Quantus class, Quantus init params, Quantus call params)."""
    step = 3 * hw // steps  # Quantus wants a divisor of H·W: steps = 3·2^k
    if hw % step:
        raise SystemExit(f"--steps {steps}: 3·H·W/steps = {step} must divide H·W = {hw}; use 3·2^k steps")
    return [
        ("sparseness", {}, "Sparseness", {"normalise": False}, {}),
        ("complexity", {}, "Complexity", {"normalise": False}, {}),
        ("pixel_flipping", {"features_in_step": step}, "PixelFlipping",
         {"features_in_step": step, "return_auc_per_sample": True}, {}),
        ("faithfulness_correlation", {"nr_runs": runs, "subset_size": 224}, "FaithfulnessCorrelation",
         {"nr_runs": runs, "subset_size": 224, "return_aggregate": False}, {}),
        ("max_sensitivity", {"nr_samples": noise}, "MaxSensitivity", {"nr_samples": noise}, {}),
        ("random_logit", {}, "RandomLogit", {"num_classes": 6}, {}),
        ("mprt", {"reduce": "last"}, "MPRT", {"return_last_correlation": True, "skip_layers": True}, {}),
    ]


def models(which: str):
    if which in ("all", "cnn"):
        torch.manual_seed(0)
        yield "cnn-small 32²", cnn_small(in_chans=3, num_classes=6).eval(), 32
    if which in ("all", "resnet18"):
        import timm

        torch.manual_seed(0)
        yield "resnet18 64²", timm.create_model("resnet18", pretrained=False, num_classes=6).eval(), 64


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def run(samples: int, device: str, which: str, steps: int, runs: int, noise: int) -> list[dict]:
    import quantus

    rows = []
    for label, model, size in models(which):
        model = model.to(device)
        for p in model.parameters():
            p.requires_grad_(False)
        x, y, _ = generate_shapes(samples, size, seed=0)
        x, y = normalise(x, MEAN, STD).to(device), y.to(device)
        x_range = (normalise(torch.zeros(1, 3, 1, 1), MEAN, STD).flatten(), normalise(torch.ones(1, 3, 1, 1), MEAN,
                                                                                          STD).flatten())
        grad = create_method("grad")
        maps, t_native_explain = timed(grad, model, x, y, x_range=x_range)
        maps = maps.detach()
        a_q, t_q_explain = timed(quantus.explain, model, x.cpu().numpy(), y.cpu().numpy(), method="Gradient",
                                 reduce_axes=(), device=device)
        rows.append({"model": label, "metric": "(explain: grad)", "native": float("nan"), "quantus": float("nan"),
                     "native_s": t_native_explain, "quantus_s": t_q_explain})
        ctx = MetricContext(model, x, y, y, maps, grad, x_range, generator=torch.Generator(device).manual_seed(0))
        for name, params, cls, q_init, q_call in metric_set(size * size, steps, runs, noise):
            values, t_native = timed(create_metric(name, **params), ctx)
            values = values.cpu().numpy()
            q = getattr(quantus, cls)(disable_warnings=True, **{"normalise_func_kwargs": PER_SAMPLE, **q_init})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.random.seed(0)
                q_values, t_q = timed(q, model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(), a_batch=a_q,
                                      explain_func=quantus.explain,
                                      explain_func_kwargs={"method": "Gradient", "reduce_axes": ()},
                                      channel_first=True, device=device, batch_size=samples, **q_call)
            rows.append({"model": label, "metric": name, "native": float(np.mean(values)),
                         "quantus": float(np.mean(np.asarray(q_values, dtype=np.float64))),
                         "native_s": t_native, "quantus_s": t_q})
            print(f"{label:14s} {name:26s} {rows[-1]['native']:+.6g} {rows[-1]['quantus']:+.6g} "
                  f"{t_native:7.2f}s {t_q:7.2f}s", flush=True)
    return rows


def table(rows: list[dict], samples: int, device: str) -> str:
    lines = [f"GradBench native vs Quantus 0.6 + Captum, {samples} inputs, device {device}, "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads", "",
             "| model | metric | GradBench (mean) | Quantus (mean) | GradBench s | Quantus s | speed-up |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        val = ("—", "—") if np.isnan(r["native"]) else (f"{r['native']:.6g}", f"{r['quantus']:.6g}")
        lines.append(f"| {r['model']} | {r['metric']} | {val[0]} | {val[1]} | {r['native_s']:.2f} | "
                     f"{r['quantus_s']:.2f} | {r['quantus_s'] / max(r['native_s'], 1e-9):.1f}× |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", choices=("all", "cnn", "resnet18"), default="all")
    ap.add_argument("--steps", type=int, default=24, help="pixel-flipping steps (3·2^k)")
    ap.add_argument("--runs", type=int, default=20, help="faithfulness-correlation subsets per input")
    ap.add_argument("--noise", type=int, default=5, help="max-sensitivity noise draws per input")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = run(args.samples, args.device, args.only, args.steps, args.runs, args.noise)
    md = table(rows, args.samples, args.device)
    md += (f"\n\npixel flipping {args.steps} steps, faithfulness correlation {args.runs} subsets of 224, "
           f"max sensitivity {args.noise} draws; MPRT: last layer (Quantus skip_layers)")
    print("\n" + md)
    if args.out:
        args.out.write_text(md + "\n")


if __name__ == "__main__":
    main()
