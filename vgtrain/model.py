"""CosPlace's network: a torchvision backbone cut after its last conv block, then L2Norm-GeM-FC-L2Norm.

The module tree, and so every ``state_dict`` key, is CosPlace's
(cosplace_model/cosplace_network.py): ``backbone.<i>.*`` for the kept children of the
torchvision model, in order, and ``aggregation.1.p`` (GeM), ``aggregation.3.weight`` /
``aggregation.3.bias`` (the FC layer). Released CosPlace weights therefore load with
``strict=True``.

Nothing is downloaded: backbones are built with ``weights=None`` and ImageNet
weights come from a file the user passes (``backbone_weights``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vgtrain.compat import import_torchvision

__all__ = [
    "BACKBONES",
    "CHANNELS",
    "GeM",
    "GeoLocalizationNet",
    "L2Norm",
    "build_model",
    "load_state_dict_checked",
    "model_args",
]

BACKBONES = ("ResNet18", "ResNet50", "ResNet101", "ResNet152", "VGG16")
"""Backbone names accepted by :func:`build_model` (CosPlace's spelling)."""

CHANNELS = {"ResNet18": 512, "ResNet50": 2048, "ResNet101": 2048, "ResNet152": 2048, "VGG16": 512}
"""Channels of each backbone's last feature map, i.e. the input width of the FC layer."""

# Heads of the full torchvision models that the cut drops: ignored when loading backbone weights.
_DROPPED_HEADS = ("fc.", "classifier.")
_MAX_KEYS_SHOWN = 5


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


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone is set to {backbone!r} but it must be one of {', '.join(BACKBONES)}")


def _torchvision_model(backbone: str) -> nn.Module:
    """Build the full torchvision classification model, randomly initialised (nothing is downloaded)."""
    tv = import_torchvision()
    return getattr(tv.models, backbone.lower())(weights=None)


def _cut_backbone(backbone: str, full: nn.Module, train_all_layers: bool) -> nn.Sequential:
    """CosPlace's cut and freeze of a torchvision model (REFERENCE.md d)."""
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
        fc_output_dim: descriptor dimension (CosPlace default 512).
        train_all_layers: if False (CosPlace default), freeze the early layers: for ResNets
            everything before ``layer3``; for VGG16 all but the last five modules.
        torchvision_model: the full torchvision model to cut the backbone from (e.g. with
            ImageNet weights loaded); a randomly initialised one is built when omitted.
    """

    def __init__(
        self,
        backbone: str = "ResNet18",
        fc_output_dim: int = 512,
        train_all_layers: bool = False,
        *,
        torchvision_model: nn.Module | None = None,
    ):
        super().__init__()
        _check_backbone(backbone)
        if isinstance(fc_output_dim, bool) or not isinstance(fc_output_dim, int) or fc_output_dim < 1:
            raise ValueError(f"fc_output_dim must be a positive integer, got {fc_output_dim!r}")
        self.backbone_name = backbone
        self.fc_output_dim = fc_output_dim
        self.train_all_layers = bool(train_all_layers)
        full = torchvision_model if torchvision_model is not None else _torchvision_model(backbone)
        self.backbone = _cut_backbone(backbone, full, self.train_all_layers)
        self.aggregation = nn.Sequential(
            L2Norm(),
            GeM(),
            nn.Flatten(),
            nn.Linear(CHANNELS[backbone], fc_output_dim),
            L2Norm(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Images (B, 3, H, W), ImageNet-normalised -> descriptors (B, fc_output_dim), unit L2 norm."""
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
    if not path.is_file():
        raise FileNotFoundError(f"backbone weights file {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{path} does not hold a state_dict (a dict of tensor names to tensors); "
            "save one with torch.save(model.state_dict(), FILE)"
        )
    return state


def _load_torchvision_weights(full: nn.Module, backbone: str, path: Path) -> None:
    """Load a torchvision state-dict file into the full model, ignoring the classifier head that the cut drops."""
    state = _read_state_dict(path)
    kept = {k: v for k, v in state.items() if not k.startswith(_DROPPED_HEADS)}
    expected = {k: v for k, v in full.state_dict().items() if not k.startswith(_DROPPED_HEADS)}
    missing, unexpected, wrong_shape = _mismatch(expected, kept)
    if missing or unexpected or wrong_shape:
        hint = ""
        if any(k.startswith(("backbone.", "aggregation.")) for k in state):
            hint = " (this looks like a whole CosPlace/vgtrain model, not torchvision backbone weights)"
        raise ValueError(
            f"backbone weights {path} do not fit torchvision's {backbone.lower()}{hint}: "
            f"{_describe_mismatch(missing, unexpected, wrong_shape)}. "
            f"Pass the ImageNet state_dict of torchvision.models.{backbone.lower()}."
        )
    full.load_state_dict(kept, strict=False)


def build_model(
    backbone: str = "ResNet18",
    fc_output_dim: int = 512,
    train_all_layers: bool = False,
    backbone_weights: str | Path | None = None,
) -> GeoLocalizationNet:
    """Build CosPlace's network, optionally starting the backbone from a torchvision weights file.

    Args:
        backbone: one of :data:`BACKBONES`; anything else raises ValueError.
        fc_output_dim: descriptor dimension.
        train_all_layers: train the early backbone layers too (frozen by default, as in CosPlace).
        backbone_weights: a file holding the state_dict of the *full* torchvision model
            (e.g. ``resnet18-f37072fd.pth``); keys such as ``conv1.weight`` must match,
            while the ``fc``/``classifier`` head is ignored. Without it the backbone is
            randomly initialised and a UserWarning says so.
    """
    _check_backbone(backbone)
    full = _torchvision_model(backbone)
    if backbone_weights is None:
        warnings.warn(
            f"the {backbone} backbone is randomly initialised: pass --backbone-weights FILE with "
            "torchvision ImageNet weights; nothing is downloaded at run time",
            UserWarning,
            stacklevel=2,
        )
    else:
        _load_torchvision_weights(full, backbone, Path(backbone_weights))
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
    """Load ``state_dict`` strictly; on any mismatch raise ValueError naming the first offending keys."""
    missing, unexpected, wrong_shape = _mismatch(model.state_dict(), state_dict)
    if missing or unexpected or wrong_shape:
        hint = ""
        prefixes = ("module.", "_orig_mod.")
        if state_dict and all(k.startswith(prefixes) for k in state_dict):
            hint = " (keys start with 'module.' or '_orig_mod.': save the unwrapped model's state_dict)"
        elif any(k.startswith("aggregation.3.") for k in wrong_shape):
            hint = " (different fc_output_dim or backbone?)"
        raise ValueError(
            f"weights do not match the architecture: {_describe_mismatch(missing, unexpected, wrong_shape)}{hint}"
        )
    model.load_state_dict(state_dict, strict=True)
