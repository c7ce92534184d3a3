"""Weight-noise smoothing: NoiseGrad and FusionGrad.

Each of the N model copies multiplies every non-classifier parameter by N(1, σ²) noise. The model
is never touched: copies exist only as parameter dicts fed to ``torch.func.functional_call``.
Noise is drawn copy by copy (parameters in ``named_parameters`` order) from the job's generator,
so the result equals the Python loop over copies whatever the chunk size.

A linear, deterministic base (grad, Grad×Input, IG) runs once per pass on the mean score of k
copies (one backward pass for all k): the mean of the copies' maps is the map of their mean score,
since differentiation is linear. The k forwards are either a loop over copies or one ``vmap`` over
the stacked copies (each conv becomes a grouped conv with batched weights). On CPU they cost the
same (resnet18 at 64², 4 copies, 1 thread: 0.53 s both), and the loop needs no batching rule for
any op, so ``vmap=None`` means vmap on CUDA only, where one batched kernel should beat k small ones
(not measured: no GPU was at hand). Any other base (a stochastic one such as
SmoothGrad in FusionGrad, or Grad-CAM) runs once per copy, which keeps the loop's draw order.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from bench.methods.base import Method, base_noise, base_of, create_method, register_method, resolve_base
from bench.methods.params import NonNegative, PositiveInt

COPY_BYTES = 1 << 30  # weight copies held at once: k·|θ| stays under this (resnet50: 10 copies)



def classifier_name(model: nn.Module, classifier: str | None = "auto") -> str | None:
    """Name of the module whose parameters stay clean: timm's ``get_classifier()``, else the last
    ``nn.Linear``; ``classifier=None`` or ``""`` perturbs every parameter."""
    if classifier != "auto":
        return classifier or None
    names = {id(m): n for n, m in model.named_modules()}
    for m in model.modules():
        head = m.get_classifier() if callable(getattr(m, "get_classifier", None)) else None
        if isinstance(head, nn.Module) and any(True for _ in head.parameters()) and id(head) in names:
            return names[id(head)]
    linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError("noisegrad: cannot find the classifier (no get_classifier(), no nn.Linear); pass "
                         "classifier='<module name>' to keep it clean, or classifier=None to perturb every weight")
    return linear[-1]


def perturbed_parameters(model: nn.Module, classifier: str | None = "auto") -> dict[str, Tensor]:
    head = classifier_name(model, classifier)
    if head is not None and head not in dict(model.named_modules()):
        raise ValueError(f"noisegrad: classifier '{head}' is not a module of the model")
    keep = () if head is None else (head + ".",)
    return {n: p for n, p in model.named_parameters() if not (head is not None and n.startswith(keep))}


def draw_copies(params: dict[str, Tensor], k: int, sigma: float, generator: torch.Generator | None
                ) -> dict[str, Tensor]:
    """k copies stacked on a leading dim, θ·(1 + σ·ε), drawn copy by copy in parameter order."""
    stacked = {n: torch.empty((k, *p.shape), device=p.device, dtype=p.dtype) for n, p in params.items()}
    with torch.no_grad():
        for c in range(k):
            for n, p in params.items():
                eps = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
                stacked[n][c] = p * (1 + sigma * eps)
    return stacked


class CopyMean(nn.Module):
    """The mean score of k stacked weight copies, f̄(x) = 1/k Σ_c f(x; θ_c): one backward for all k.

    The wrapped model is a submodule so that name-based tools (Grad-CAM's ``layer=``) still find
    its modules; its own parameters are only read, never replaced.
    """

    def __init__(self, model: nn.Module, stacked: dict[str, Tensor], use_vmap: bool = False):
        super().__init__()
        self.model = model
        self.stacked = stacked
        self.k = len(next(iter(stacked.values()))) if stacked else 1
        self.use_vmap = use_vmap

    def copy(self, c: int) -> dict[str, Tensor]:
        return {n: p[c] for n, p in self.stacked.items()}

    def forward(self, x: Tensor) -> Tensor:
        if self.k == 1:  # no overhead for a single copy (and hooks see plain tensors)
            return functional_call(self.model, self.copy(0), (x,))
        if self.use_vmap:
            return vmap(lambda p: functional_call(self.model, p, (x,)))(self.stacked).mean(0)
        return sum(functional_call(self.model, self.copy(c), (x,)) for c in range(self.k)) / self.k


def noisegrad_noise(x: Tensor, x_range: tuple[Tensor, Tensor], *, base: str | Method,
                    base_params: dict[str, Any] | None) -> Tensor | None:
    """NoiseGrad perturbs weights, not inputs: its input noise is its base's (None for grad)."""
    return base_noise(None, base, base_params, x, x_range)


def fusiongrad_noise(x: Tensor, x_range: tuple[Tensor, Tensor], *, alpha: float, base: str | Method,
                     base_params: dict[str, Any] | None) -> Tensor | None:
    """The input σ of FusionGrad's inner SmoothGrad, α·(x_max − x_min); its weight σ is not input noise."""
    return create_method("smoothgrad", alpha=alpha, base=base, base_params=base_params).input_noise(x, x_range)


@register_method("noisegrad", defaults={"n": 50, "sigma": 0.2, "base": "grad"}, stochastic=True,
                 input_noise=noisegrad_noise, unsmoothed=base_of)
def noisegrad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size, n: PositiveInt = 50,
              sigma: NonNegative = 0.2, base: str | Method = "grad", base_params: dict[str, Any] | None = None,
              classifier: str | None = "auto", vmap: bool | None = None) -> Tensor:
    """NoiseGrad: mean of the base map over N model copies with N(1, σ²) multiplicative weight noise."""
    use_vmap = x.device.type == "cuda" if vmap is None else vmap
    b = resolve_base(base, base_params)
    params = perturbed_parameters(model, classifier)
    per_pass = 1
    if b.linear and not b.stochastic:
        size = sum(p.numel() * p.element_size() for p in params.values())
        per_pass = max(1, min(chunk_size // len(x), COPY_BYTES // max(size, 1)))
    total = torch.zeros_like(x)
    for s in range(0, n, per_pass):
        k = min(per_pass, n - s)
        copies = CopyMean(model, draw_copies(params, k, sigma, generator), use_vmap)
        # each row now costs k model evaluations: the base gets k times fewer rows per pass
        maps = b(copies, x, target, x_range=x_range, generator=generator, chunk_size=max(1, chunk_size // k))
        total += maps * k
    return total / n


@register_method("fusiongrad", defaults={"n": 10, "m": 10, "sigma": 0.2, "alpha": 0.15, "base": "grad"},
                 stochastic=True, input_noise=fusiongrad_noise, unsmoothed=base_of)
def fusiongrad(model, x: Tensor, target: Tensor, *, x_range, generator, chunk_size, n: PositiveInt = 10,
               m: PositiveInt = 10, sigma: NonNegative = 0.2, alpha: NonNegative = 0.15, base: str | Method = "grad",
               base_params: dict[str, Any] | None = None, classifier: str | None = "auto") -> Tensor:
    """FusionGrad: NoiseGrad × SmoothGrad, N weight copies each with M input perturbations."""
    # Copy-major, as in the NoiseGrad++ and AdaptGrad releases: copy i, then its M input noises.
    inner = create_method("smoothgrad", n=m, alpha=alpha, base=base, base_params=base_params)
    return noisegrad(model, x, target, x_range=x_range, generator=generator, chunk_size=chunk_size, n=n,
                     sigma=sigma, base=inner, classifier=classifier)
