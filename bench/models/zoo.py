"""Architectures. Small ones live here; timm names pass through to ``timm.create_model``.

Two ways to a timm model: the registered names of ``registry/models.toml`` (the generalization
paper's architectures under their paper names, e.g. ``vit_b_16`` → ``vit_base_patch16_224``), or
``timm:NAME`` for any other timm architecture (``timm:regnety_016``). Both build through
:func:`timm_model`, with ``pretrained``, ``num_classes`` and ``in_chans`` passed on.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from bench.errors import GradBenchError
from bench.models.activations import act_layer, remaining, replace_types, set_activation
from bench.models.pool import MaxPool2x2
from bench.registry import Entry, models

TIMM_PREFIX = "timm:"


class ModelError(GradBenchError):
    pass


@models.register("cnn-small", citation="GradBench zoo")
def cnn_small(in_chans: int = 3, num_classes: int = 10, image_size: int = 32,
              widths: tuple[int, ...] = (16, 32, 64), global_pool: bool = False) -> nn.Module:
    """3-conv CNN (16/32/64 channels, 2×2 max-pooling after each, linear head)."""
    layers: list[nn.Module] = []
    c = in_chans
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), MaxPool2x2()]
        c = w
    # The flattened head keeps where things are, which this small net needs to learn shapes fast;
    # global_pool=True gives the benchmark's anchor variant (global average pool, 10 classes).
    side = image_size // 2 ** len(widths)
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)] if global_pool else \
        [nn.Flatten(), nn.Linear(c * side * side, num_classes)]
    return nn.Sequential(*layers, *head)


@models.register("mlp", citation="Zhou et al., AdaptGrad (MNIST model)")
def mlp(in_chans: int = 1, num_classes: int = 10, image_size: int = 32, hidden: int = 200) -> nn.Module:
    """Two-layer perceptron, 200 hidden units (AdaptGrad's MNIST model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size * image_size, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


class _Block(nn.Module):
    """conv3×3 (+BN) + ReLU; with ``skip`` the input is added back (1×1 projection if widths differ)."""

    def __init__(self, c_in: int, c_out: int, batchnorm: bool, skip: bool):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(c_out) if batchnorm else nn.Identity()
        self.act = nn.ReLU()
        self.skip = skip
        self.proj = nn.Conv2d(c_in, c_out, 1, bias=False) if skip and c_in != c_out else nn.Identity()

    def forward(self, x):
        out = self.act(self.bn(self.conv(x)))
        return out + self.proj(x) if self.skip else out


@models.register("simple-cnn", citation="Mehrpanah et al., On the Complexity-Faithfulness Trade-off (ICCV 2025)")
def simple_cnn(in_chans: int = 3, num_classes: int = 10, image_size: int = 32, depth: int = 4,
               width: int = 16, batchnorm: bool = False, skip: bool = False, hidden: int = 512) -> nn.Module:
    """Plain CNN of ``depth`` conv blocks (BN and skip connections optional), 512-unit MLP head.

    The complexity paper's ablation family: widths double at each 2×2 max-pool; the pools are
    spread evenly over the blocks, at most until the side is 4 pixels, so depth 8 fits 32×32.
    """
    if not 1 <= depth <= 8:
        raise ValueError(f"simple-cnn: depth must be in 1..8, got {depth}")
    n_pools = min(depth, max(image_size.bit_length() - 3, 0))  # 32 → 3 pools → 4×4
    pool_after = {round((j + 1) * depth / n_pools) - 1 for j in range(n_pools)}
    layers: list[nn.Module] = []
    c, side = in_chans, image_size
    c_next = width
    for i in range(depth):
        layers.append(_Block(c, c_next, batchnorm, skip))
        c = c_next
        if i in pool_after:
            layers.append(MaxPool2x2())
            side //= 2
            c_next = c * 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * side * side, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))


def _timm():
    try:
        import timm
    except ImportError:
        raise ModelError("timm architectures need the timm package: pip install 'timm>=1.0'") from None
    return timm


def _check_timm_name(timm_name: str) -> None:
    timm = _timm()
    if not timm.is_model(timm_name.split(".")[0]):  # "resnet18.a1_in1k": a name with a weights tag
        close = difflib.get_close_matches(timm_name, timm.list_models(), 3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ModelError(f"unknown timm model '{timm_name}'; {hint}(python -c \"import timm; "
                         f"print(timm.list_models('*{timm_name[:4]}*'))\")")


def _create_timm(timm_name: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    timm = _timm()
    try:
        return timm.create_model(timm_name, pretrained=pretrained, **kwargs)
    except Exception as e:
        if not pretrained or isinstance(e, TypeError):
            raise
        cause = (str(e).splitlines() or [type(e).__name__])[0][:160]
        # One line: where the weights would come from, and the two ways out.
        raise ModelError(
            f"pretrained weights for timm model '{timm_name}' could not be loaded ({type(e).__name__}: {cause}); "
            "run once with network access (HF_HUB_OFFLINE unset) to cache them under ~/.cache/huggingface, "
            "or set params.pretrained = false") from None


@models.register("timm", citation="Wightman, PyTorch Image Models (timm)")
def timm_model(timm_name: str, in_chans: int = 3, num_classes: int = 1000, image_size: int = 224,
               pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Any timm architecture by name: ``timm.create_model(timm_name, pretrained, num_classes, in_chans)``.

    ViT and MLP-Mixer have a fixed input size: they get ``img_size=image_size``; convolutional
    ones take any size as they are.
    """
    _check_timm_name(timm_name)
    cfg = _timm().models.get_pretrained_cfg(timm_name.split(".")[0])
    if cfg is not None and cfg.fixed_input_size:
        kwargs.setdefault("img_size", image_size)
    return _create_timm(timm_name, pretrained, num_classes=num_classes, in_chans=in_chans, **kwargs)


@models.register("resnet18-cifar", citation="He et al., Deep Residual Learning (CVPR 2016); CIFAR stem")
def resnet18_cifar(in_chans: int = 3, num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """timm ResNet-18 with the CIFAR stem: 3×3 stride-1 first conv and no max-pool (for 32×32).

    With ``pretrained`` the ImageNet weights are kept everywhere but the (new, 3×3) stem conv.
    """
    model = _create_timm("resnet18", pretrained, num_classes=num_classes, in_chans=in_chans)
    model.conv1 = nn.Conv2d(in_chans, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def architecture_entry(name: str) -> Entry:
    """The registry entry of an architecture; ``timm:NAME`` resolves to :func:`timm_model`."""
    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX):]
        _check_timm_name(timm_name)
        return Entry(name, timm_model, {"timm_name": timm_name}, f"timm {timm_name}")
    return models.get(name)


def build_model(architecture: str, activation: str, in_chans: int, num_classes: int, image_size: int,
                **params: Any) -> nn.Module:
    """Create an untrained model with the given activation in place of every ReLU.

    ``params`` go to the architecture's factory, except ``replace``: ``"relu"`` (default) swaps
    ReLU modules only, ``"all"`` every activation (timm models then also get ``act_layer=``, so
    blocks that build their activation from it get ours). A non-ReLU ``activation`` on a network
    with nothing ``replace`` selects (ConvNeXt, ViT, EfficientNet under ``"relu"``) is an error.
    """
    replace = params.pop("replace", "relu")
    entry = architecture_entry(architecture)
    kwargs = {"in_chans": in_chans, "num_classes": num_classes, **params}
    accepted = entry.accepts()
    if accepted is None or "image_size" in accepted:
        kwargs["image_size"] = image_size
    if replace == "all" and entry.factory is timm_model:
        try:
            model = entry.create(act_layer=act_layer(activation), **kwargs)
        except TypeError:  # this architecture takes no act_layer: the module swap below does it
            model = entry.create(**kwargs)
    else:
        model = entry.create(**kwargs)
    if activation != "relu" and not remaining(model, replace_types(replace)):
        # Otherwise a β sweep over a GELU network silently trains the same model under many names.
        raise ModelError(f"{architecture} has no {'ReLU' if replace == 'relu' else 'activation'} module to replace "
                         f"with {activation}; set params.replace = \"all\" to swap its other activations too")
    return set_activation(model, activation, replace)
