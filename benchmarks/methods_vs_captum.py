"""Maps per second, GradBench vs Captum: same model, same batch, same device.

    python benchmarks/methods_vs_captum.py [--quick] [--device cpu] [--chunk-sizes 32 64 256]

Models: timm resnet18 at 64×64 (random weights) and the zoo's cnn-small at 32×32. Each cell is the
best of the repeats of one call on the whole batch (on a shared machine the minimum is the least
noisy estimate of the cost; GradBench and Captum calls alternate so that load drifts hit both);
maps/s = batch / seconds. Captum's methods run
with their defaults (IG and NoiseTunnel push all steps/samples through in one batch). NoiseGrad has
no Captum counterpart and is timed for GradBench alone. GradBench runs the model as its runner does
(``prepare_model``: channels_last where ``CHANNELS_LAST`` says so), Captum gets it as a user hands it
over. ``--chunk-sizes`` times the batched methods (IG, SmoothGrad, NoiseGrad) at several chunk sizes,
in both memory formats, to choose ``DEFAULT_CHUNK_SIZE`` and ``CHANNELS_LAST`` for the device.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import torch  # noqa: E402
from captum.attr import (  # noqa: E402
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Saliency,
)

from bench.methods import create_method, prepare_model  # noqa: E402
from bench.methods.base import default_chunk_size  # noqa: E402
from bench.models.zoo import cnn_small  # noqa: E402


def seconds(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_seconds(fns: list[Callable[[], object] | None], repeats: int, device: torch.device) -> list[float | None]:
    """Best time of each function over ``repeats`` rounds, the functions alternating in each round."""
    for fn in fns:
        if fn is not None:
            fn()  # warm-up: allocator, lazy init, first-call dispatch
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, t in zip(fns, times, strict=True):
            if fn is not None:
                t.append(seconds(fn, device))
    return [min(t) if t else None for t in times]


def bench_call(method, model, x, y, x_range, chunk_size: int | None = None) -> Callable[[], torch.Tensor]:
    return lambda: method(model, x, y, x_range=x_range, generator=torch.Generator(device=x.device),
                          chunk_size=chunk_size)


def cases(model, layer, steps: int, samples: int):
    """(label, GradBench method name + params, Captum call or None) per method."""
    def gradcam_captum(x, y):
        cam = LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=True)
        return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear").expand_as(x)

    sigma = 0.15 * 5.0  # α·(x_max − x_min) with the range below
    return [
        ("grad", ("grad", {}), lambda x, y: Saliency(model).attribute(x, target=y, abs=False)),
        ("grad_x_input", ("grad_x_input", {}), lambda x, y: InputXGradient(model).attribute(x, target=y)),
        (f"integrated_gradients (m={steps})", ("integrated_gradients", {"steps": steps}),
         lambda x, y: IntegratedGradients(model).attribute(x, target=y, n_steps=steps, method="riemann_right")),
        (f"smoothgrad (N={samples})", ("smoothgrad", {"n": samples}),
         lambda x, y: NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=samples,
                                                             stdevs=sigma, target=y, abs=False)),
        ("guided_backprop", ("guided_backprop", {}), lambda x, y: GuidedBackprop(model).attribute(x, target=y)),
        ("gradcam", ("gradcam", {}), gradcam_captum),
        (f"noisegrad (N={samples})", ("noisegrad", {"n": samples}), None),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, steps and samples")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="inputs per call (default 8; 4 with --quick)")
    # On a shared 2-core machine, 2 OpenMP threads collapse when another process holds a core (cnn-small
    # grad, batch 8: 7 ms with 1 thread, 290 ms with 2, measured): 1 thread unless asked otherwise.
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--chunk-sizes", type=int, nargs="*", default=[], help="also time these chunk sizes")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    args.batch = args.batch or (4 if args.quick else 8)
    repeats, steps, samples = (2, 8, 4) if args.quick else (5, 16, 8)
    x_range = (torch.full((3,), -2.5, device=dev), torch.full((3,), 2.5, device=dev))

    torch.manual_seed(0)
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=10).eval().to(dev)
    small = cnn_small(num_classes=10).eval().to(dev)
    setups = [("resnet18 64²", resnet, resnet.layer4, 64), ("cnn-small 32²", small, small[7], 32)]
    print(f"device {dev}, {torch.get_num_threads()} threads, batch {args.batch}, torch {torch.__version__}, "
          f"default chunk {default_chunk_size(dev)}, best of {repeats}\n")
    print("| model | method | GradBench maps/s | Captum maps/s | ratio |")
    print("|---|---|---:|---:|---:|")
    for label, model, layer, side in setups:
        for p in model.parameters():
            p.requires_grad_(False)
        ours_model = prepare_model(copy.deepcopy(model), dev)
        layouts = {"nchw": model, "channels_last": copy.deepcopy(model).to(memory_format=torch.channels_last)}
        g = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(args.batch, 3, side, side, generator=g, device=dev)
        y = torch.randint(0, 10, (args.batch,), generator=g, device=dev)
        for name, (method, params), captum in cases(model, layer, steps, samples):
            ours, theirs = best_seconds([bench_call(create_method(method, **params), ours_model, x, y, x_range),
                                         (lambda c=captum, x=x, y=y: c(x, y)) if captum else None], repeats, dev)
            cap = f"{args.batch / theirs:.1f}" if theirs else "—"
            ratio = f"{theirs / ours:.2f}×" if theirs else "—"
            print(f"| {label} | {name} | {args.batch / ours:.1f} | {cap} | {ratio} |", flush=True)
        if args.chunk_sizes:  # 4× the samples, so that the larger chunks are really used; interleaved
            for method, params in (("integrated_gradients", {"steps": 4 * steps}), ("smoothgrad", {"n": 4 * samples}),
                                   ("noisegrad", {"n": 4 * samples})):
                m = create_method(method, **params)
                grid = [(name, c) for name in layouts for c in args.chunk_sizes]
                times = best_seconds([bench_call(m, layouts[name], x, y, x_range, c) for name, c in grid], repeats,
                                     dev)
                cells = ", ".join(f"{name} chunk {c}: {args.batch / t:.2f}" for (name, c), t in zip(grid, times,
                                                                                                   strict=True))
                print(f"| {label} | {method} {params} maps/s by layout and chunk size | {cells} | | |", flush=True)


if __name__ == "__main__":
    main()
