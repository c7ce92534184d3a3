"""The anchor job, once through GradBench and once through Captum explainers + Quantus 0.6.

    PYTHONPATH=. python benchmarks/harness_vs_quantus.py [--device cpu|cuda] [--model cnn|resnet18|all]

The anchor job (issue 7): 64 inputs at 32×32 (shapes) through a 3-conv CNN (16/32/64 channels, ReLU,
max-pooling, global average pool, 10 classes, untrained: speed and definitions are compared, not
models); explanations grad, smoothgrad (N = 50, σ = 0.15·range), integrated_gradients (32 steps,
zero baseline); metrics sparseness, complexity, faithfulness_correlation (100 runs, subset 224),
max_sensitivity (10 samples), pixel_flipping (16 features per step), random_logit. ``--model
resnet18`` runs timm resnet18 at 64×64 instead. Both sides in one process, same inputs, same
per-sample normalisation; it prints the wall time of every stage, the totals, their ratio, and the
largest difference between the two sides' mean values (random draws — faithfulness subsets, max
sensitivity noise, SmoothGrad noise, random-logit classes — are each side's own, so those agree in
distribution; the tests check equality on identical draws).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.data.base import normalise
from bench.data.synthetic import MEAN, STD, generate_shapes
from bench.methods import create_method, prepare_model
from bench.metrics import MetricContext, create_metric
from bench.models.zoo import cnn_small

PER_SAMPLE = {"normalise_axes": [1, 2, 3]}
ALPHA = 0.15
DETERMINISTIC = ("sparseness", "complexity", "pixel_flipping", "random_logit")
METHODS = {"grad": {}, "smoothgrad": {"n": 50, "alpha": ALPHA}, "integrated_gradients": {"steps": 32}}


def metrics(num_classes: int) -> list[tuple[str, dict, str, dict]]:
    """(GradBench name, params, Quantus class, Quantus init params): the same settings on both sides, as
    the tests call Quantus (every Quantus class gets per-sample normalisation, ``PER_SAMPLE``, which
    is what GradBench's sparseness and complexity do)."""
    return [
        ("sparseness", {}, "Sparseness", {}),
        ("complexity", {}, "Complexity", {}),
        ("faithfulness_correlation", {"nr_runs": 100, "subset_size": 224}, "FaithfulnessCorrelation",
         {"nr_runs": 100, "subset_size": 224, "return_aggregate": False}),
        ("max_sensitivity", {"nr_samples": 10}, "MaxSensitivity", {"nr_samples": 10}),
        ("pixel_flipping", {"features_in_step": 16}, "PixelFlipping",
         {"features_in_step": 16, "return_auc_per_sample": True}),
        ("random_logit", {"num_classes": num_classes}, "RandomLogit", {"num_classes": num_classes}),
    ]


def captum_explain(model, inputs, targets, method: str = "grad", device: str = "cpu", sigma: float = 0.6, **_):
    """Quantus' explain_func contract (numpy in and out) over Captum's explainers."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device).requires_grad_(True)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device)
    if method == "grad":
        a = Saliency(model).attribute(x, target=t, abs=False)
    elif method == "smoothgrad":
        a = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=50, stdevs=sigma, target=t,
                                                   abs=False)
    else:
        a = IntegratedGradients(model).attribute(x, target=t, n_steps=32, method="riemann_right",
                                                 baselines=torch.zeros_like(x))
    return a.detach().cpu().numpy()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(on: str, fn, *args, **kwargs):
    sync(on)
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    sync(on)
    return out, time.perf_counter() - t


def anchor(which: str, device: str):
    torch.manual_seed(0)
    if which == "cnn":
        return "cnn (anchor) 32²", cnn_small(in_chans=3, num_classes=10, global_pool=True), 32
    import timm

    return "resnet18 64²", timm.create_model("resnet18", pretrained=False, num_classes=10), 64


def run(which: str, device: str, samples: int) -> list[dict]:
    import quantus

    label, model, size = anchor(which, device)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    # GradBench's side runs the model as its runner does (prepare_model: the device's memory format);
    # Captum and Quantus get the model as a user hands it to them. Same weights.
    ours = prepare_model(copy.deepcopy(model), torch.device(device))
    x, y, _ = generate_shapes(samples, size, seed=0)
    x, y = normalise(x, MEAN, STD).to(device), y.to(device)
    lo, hi = torch.full((3,), -2.0, device=device), torch.full((3,), 2.0, device=device)
    sigma = ALPHA * 4.0  # σ = α·(x_max − x_min) on both sides
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    rows = []
    for method, params in METHODS.items():
        m = create_method(method, **params)
        gen = torch.Generator(device).manual_seed(0)
        maps, t_ours = timed(device, m, ours, x, y, x_range=(lo, hi), generator=gen)
        kw = {"method": method, "device": device, "sigma": sigma}
        a_q, t_theirs = timed(device, captum_explain, model, x_np, y_np, **kw)
        rows.append({"model": label, "method": method, "stage": "explain", "ours": np.nan, "theirs": np.nan,
                     "ours_s": t_ours, "theirs_s": t_theirs})
        ctx = MetricContext(ours, x, y, y, maps.detach(), m, (lo, hi), generator=gen)
        for name, p, cls, q_init in metrics(10):
            values, t_ours = timed(device, create_metric(name, **p), ctx)
            q = getattr(quantus, cls)(disable_warnings=True, **{"normalise_func_kwargs": PER_SAMPLE, **q_init})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.random.seed(0)
                q_values, t_theirs = timed(device, q, model=model, x_batch=x_np, y_batch=y_np, a_batch=a_q,
                                           explain_func=captum_explain, explain_func_kwargs=kw,
                                           channel_first=True, device=device, batch_size=samples)
            rows.append({"model": label, "method": method, "stage": name,
                         "ours": float(values.double().mean()),
                         "theirs": float(np.mean(np.asarray(q_values, dtype=np.float64))),
                         "ours_s": t_ours, "theirs_s": t_theirs})
            r = rows[-1]
            print(f"{label} {method:22s} {name:26s} {r['ours']:+.5g} {r['theirs']:+.5g} "
                  f"{r['ours_s']:7.2f}s {r['theirs_s']:7.2f}s", flush=True)
    return rows


def report(rows: list[dict], device: str, samples: int) -> str:
    lines = [f"Anchor job, {samples} inputs, device {device} "
             f"({torch.cuda.get_device_name() if device.startswith('cuda') else f'{torch.get_num_threads()} threads'}),"
             f" torch {torch.__version__}", "",
             "| model | method | stage | GradBench | Captum+Quantus | GradBench s | Captum+Quantus s | ratio |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        vals = ("—", "—") if np.isnan(r["ours"]) else (f"{r['ours']:.5g}", f"{r['theirs']:.5g}")
        lines.append(f"| {r['model']} | {r['method']} | {r['stage']} | {vals[0]} | {vals[1]} | {r['ours_s']:.2f} | "
                     f"{r['theirs_s']:.2f} | {r['theirs_s'] / max(r['ours_s'], 1e-9):.1f}× |")
    for model in dict.fromkeys(r["model"] for r in rows):
        part = [r for r in rows if r["model"] == model]
        ours, theirs = sum(r["ours_s"] for r in part), sum(r["theirs_s"] for r in part)
        # Only cells whose two sides see identical draws can be compared digit for digit.
        diffs = {f"{r['method']}/{r['stage']}": abs(r["ours"] - r["theirs"]) / max(abs(r["theirs"]), 1e-12)
                 for r in part if r["stage"] in DETERMINISTIC and r["method"] != "smoothgrad"}
        worst = max(diffs, key=diffs.get)
        lines += ["", f"**{model}**: total GradBench {ours:.1f} s, Captum+Quantus {theirs:.1f} s, "
                      f"ratio {theirs / ours:.2f}×; largest relative difference of means where both sides "
                      f"draw nothing at random: {diffs[worst]:.2e} ({worst})"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("cnn", "resnet18", "all"), default="cnn")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args()
    rows = []
    for which in (("cnn", "resnet18") if args.model == "all" else (args.model,)):
        rows += run(which, args.device, args.samples)
    print("\n" + report(rows, args.device, args.samples))


if __name__ == "__main__":
    main()
