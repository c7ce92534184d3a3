"""The AdaptGrad paper's combinations as its release computes them (``AiShare-WHU/AdaptGrad@dbd957c``).

The release nests smoothing *inside* the base method (``saliency.py``), not around it as the
generic ``smoothgrad(base=…)`` / ``adaptgrad(base=…)`` (Captum's NoiseTunnel) do:

- S-GI / A-GI = x ⊙ SG(x) / x ⊙ AG(x) (``GradientxInput``);
- S-IG / A-IG = IG whose gradient at every path point is the smoothed gradient there, AdaptGrad's σ
  recomputed at the path point (``IntegratedGradient`` over ``SmoothGradient``);
- S-NG / A-NG = NoiseGrad whose gradient on every model copy is the smoothed gradient
  (``NoiseGradient`` over ``SmoothGradient``).

Every smoothed gradient is the release's ``SmoothGradient``: the mean of the clean gradient and N
noisy ones (N+1 terms), for SmoothGrad and AdaptGrad alike. Noise comes from the job's generator in
the release's loop order (path point, then sample; copy, then its parameters, then its samples),
one draw of ``x``'s shape at a time, so the batched result equals the Python loop. Where the paper's
text and the release differ, README.md ("AdaptGrad combos: release vs paper") says how.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from bench.methods.base import Method, create_method, input_gradient, register_method
from bench.methods.noise import CopyMean, perturbed_parameters
from bench.methods.params import NonNegative, OpenUnit, PositiveInt
from bench.methods.smoothing import Rule, adaptgrad_sigma, smoothgrad_sigma

Smoothing = Literal["smoothgrad", "adaptgrad"]
# "one" / "zero": the release's BlackBaseline / WhiteBaseline, constants of the model's input space;
# "black" / "white": the per-channel x_min / x_max (a black / white image, the paper's wording).
ReleasedBaseline = Literal["one", "zero", "black", "white"]
Classifier = str | None


def standard_normal(shape: torch.Size, generator: torch.Generator | None, device: torch.device,
                    dtype: torch.dtype) -> Tensor:
    """The one place these methods draw noise: z ~ N(0, I) of ``shape`` from the job's generator.

    An internal seam: tests replace it (``monkeypatch``) to replay the authors' recorded draws.
    """
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _sigma(points: Tensor, x_range, smoothing: str, alpha: float, c: float, rule: str) -> Tensor:
    if smoothing == "smoothgrad":
        return smoothgrad_sigma(points, x_range, alpha, None)
    return adaptgrad_sigma(points, x_range, c, rule)


def smoothed_gradients(model: nn.Module, points: Tensor, target: Tensor, *, x_range, generator, chunk_size: int,
                       smoothing: str, n: int, alpha: float, c: float, rule: str) -> Tensor:
    """The release's ``SmoothGradient`` at each of S path points (``points``: S×B×C×H×W): the mean
    of the clean gradient and n noisy ones, σ evaluated at the point. Draws come point by point,
    sample by sample (each B×C×H×W), ``chunk_size`` rows per pass."""
    n_pts, b = points.shape[:2]
    flat = points.reshape(-1, *points.shape[2:])
    total = input_gradient(model, flat, target.repeat(n_pts), chunk_size).view_as(points)
    per_chunk = max(1, chunk_size // b)  # (point, sample) pairs per pass
    for s in range(0, n_pts * n, per_chunk):
        idx = torch.arange(s, min(s + per_chunk, n_pts * n), device=points.device) // n  # point of each pair
        z = torch.stack([standard_normal(points.shape[1:], generator, points.device, points.dtype)
                         for _ in range(len(idx))])
        p = points[idx]
        noisy = p + _sigma(p, x_range, smoothing, alpha, c, rule) * z  # σ broadcasts over S×B
        g = input_gradient(model, noisy.reshape(-1, *p.shape[2:]), target.repeat(len(idx)), chunk_size)
        total.index_add_(0, idx, g.view_as(p))
    return total / (n + 1)


def _smoothing_noise(x: Tensor, x_range, *, smoothing: str, alpha: float, c: float, rule: str) -> Tensor:
    """The σ of the noise added around ``x`` (S-IG / A-IG add it around the path points, AdaptGrad's
    σ taken there; the σ at ``x`` stands for it). The clean (N+1)-th term is not counted."""
    return _sigma(x, x_range, smoothing, alpha, c, rule)


DEFAULTS = {"smoothing": "smoothgrad", "n": 50, "alpha": 0.2, "c": 0.95, "rule": "released"}


def _released_unsmoothed(name: str, keep: tuple[str, ...]):
    """The same released method with α = 0 (its N+1 terms all the clean gradient): S-IG → the
    release's IG (its nodes and baseline), S-NG → its NoiseGrad; AdaptGrad's σ is dropped the same way."""
    def rule(params: dict) -> Method:
        return create_method(name, smoothing="smoothgrad", n=1, alpha=0.0, **{k: params[k] for k in keep})
    return rule


@register_method("smoothed_grad_x_input", defaults=DEFAULTS, stochastic=True, input_noise=_smoothing_noise,
                 unsmoothed=lambda params: create_method("grad_x_input"))
def smoothed_grad_x_input(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size,
                          smoothing: Smoothing = "smoothgrad", n: PositiveInt = 50, alpha: NonNegative = 0.2,
                          c: OpenUnit = 0.95, rule: Rule = "released") -> Tensor:
    """x ⊙ SG(x) or x ⊙ AG(x), SG/AG with the clean gradient averaged in (the release's S-GI / A-GI).

    As released: N+1 terms; AdaptGrad's z = √2·erfinv(c) (``rule="released"``; the paper's Eq. 13
    is ``rule="eq13"``); α = 0.2. The release's SmoothGrad σ is negative, (x_min − x_max)·α: the
    same distribution, other draws.
    """
    sg = smoothed_gradients(model, x.unsqueeze(0), target, x_range=x_range, generator=generator,
                            chunk_size=chunk_size, smoothing=smoothing, n=n, alpha=alpha, c=c, rule=rule)
    return x * sg[0]


def released_baseline(x: Tensor, baseline: str, x_range) -> Tensor:
    if baseline in ("zero", "one"):  # the release's WhiteBaseline (zeros) / BlackBaseline (ones)
        return torch.full_like(x, 0.0 if baseline == "zero" else 1.0)
    if baseline in ("black", "white"):
        bound = x_range[0] if baseline == "black" else x_range[1]
        return bound.view(1, -1, 1, 1).expand_as(x).clone()
    raise ValueError(f"smoothed_path_ig: baseline must be 'one', 'zero', 'black' or 'white', got '{baseline}'")


@register_method("smoothed_path_ig", defaults={**DEFAULTS, "steps": 50, "baseline": "zero"}, stochastic=True,
                 input_noise=_smoothing_noise,
                 unsmoothed=_released_unsmoothed("smoothed_path_ig", ("steps", "baseline")))
def smoothed_path_ig(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size,
                     smoothing: Smoothing = "smoothgrad", n: PositiveInt = 50, alpha: NonNegative = 0.2,
                     c: OpenUnit = 0.95, rule: Rule = "released", steps: PositiveInt = 50,
                     baseline: ReleasedBaseline = "zero") -> Tensor:
    """IG over smoothed gradients, as released (S-IG / A-IG): (x − x₀) ⊙ mean of steps + 1 nodes.

    Nodes: the smoothed gradient (N+1 terms, AdaptGrad's σ at the node) at x₀ + k/steps·(x − x₀)
    for k = 0 … steps−1, and the *plain* gradient at x, equally weighted (the release's left
    Riemann sum plus the endpoint). Baselines as released: ``"zero"`` (its "White") and ``"one"``
    (its "Black"), constants in the model's input space; ``"black"`` / ``"white"`` are the
    per-channel x_min / x_max images the paper's names suggest.
    """
    x0 = released_baseline(x, baseline, x_range)
    a = torch.arange(steps, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1, 1) / steps
    path = x0 + a * (x - x0)
    sg = smoothed_gradients(model, path, target, x_range=x_range, generator=generator, chunk_size=chunk_size,
                            smoothing=smoothing, n=n, alpha=alpha, c=c, rule=rule)
    end = input_gradient(model, x, target, chunk_size)
    return (x - x0) * (sg.sum(0) + end) / (steps + 1)


def released_perturbed(model: nn.Module, classifier: Classifier) -> dict[str, Tensor]:
    """``"released"``: every parameter whose name does not contain "classifier" (weights and biases;
    a ResNet's ``fc`` too); otherwise NoiseGrad's rule (``bench.methods.noise``)."""
    if classifier == "released":
        return {k: p for k, p in model.named_parameters() if "classifier" not in k}
    return perturbed_parameters(model, classifier)


@register_method("smoothed_noisegrad", defaults={**DEFAULTS, "m": 50, "sigma": 0.2, "classifier": "released"},
                 stochastic=True, input_noise=_smoothing_noise,
                 unsmoothed=_released_unsmoothed("smoothed_noisegrad", ("m", "sigma", "classifier")))
def smoothed_noisegrad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size,
                       smoothing: Smoothing = "smoothgrad", n: PositiveInt = 50, alpha: NonNegative = 0.2,
                       c: OpenUnit = 0.95, rule: Rule = "released", m: PositiveInt = 50,
                       sigma: NonNegative = 0.2, classifier: Classifier = "released") -> Tensor:
    """NoiseGrad over smoothed gradients, as released (S-NG / A-NG): mean of M+1 smoothed gradients,
    the unperturbed model's and those of M copies θ ⊙ (1 + σ·ε) (the release's σ is −0.2: the same
    distribution). Draws: the clean model's N inputs; then per copy its parameters, then N inputs."""
    params = released_perturbed(model, classifier)
    kw = dict(x_range=x_range, generator=generator, chunk_size=chunk_size, smoothing=smoothing, n=n,
              alpha=alpha, c=c, rule=rule)
    total = smoothed_gradients(model, x.unsqueeze(0), target, **kw)[0]
    for _ in range(m):
        with torch.no_grad():
            copy = {k: (p * (1 + sigma * standard_normal(p.shape, generator, p.device, p.dtype)))[None]
                    for k, p in params.items()}
        total += smoothed_gradients(CopyMean(model, copy), x.unsqueeze(0), target, **kw)[0]
    return total / (m + 1)
