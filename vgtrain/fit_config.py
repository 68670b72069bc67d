"""``vgtrain fit``'s settings: :class:`FitConfig` (one field per command-line option) and its checks.

:func:`check_config` refuses an option out of its range before any work; :func:`check_resume`
refuses a ``--resume`` whose settings do not continue the run they name. Importing this module
imports no torch: the CLI and the contract tests read the settings without building anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vgtrain.errors import VgtrainError

__all__ = ["RESUME_MUST_MATCH", "FitConfig", "FitError", "check_config", "check_resume"]


@dataclass
class FitConfig:
    """Parameters of ``vgtrain fit`` (CosPlace's names, kebab-case on the command line)."""

    groups: str
    """Groups manifest written by ``vgdata split-groups``."""
    val: str
    """Eval manifest (``vgdata eval-set``) used for validation after every epoch."""
    out: str
    """Run folder: checkpoints (last/best .pt, .state.pt, .meta.json) and log."""
    backbone: str = "ResNet18"
    """ResNet18, ResNet50, ResNet101, ResNet152, VGG16 or EfficientNetLite0."""
    fc_output_dim: int = 512
    """Descriptor dimension."""
    train_all_layers: bool = False
    """Train the layers CosPlace freezes (before layer3 for ResNets)."""
    backbone_weights: str | None = None
    """ImageNet backbone weights (nothing is downloaded): a state-dict FILE (torchvision's; for EfficientNetLite0 the
    reference's or timm's keys) or ``imagenet`` (EfficientNetLite0 only: the weights shipped by the train extra)."""
    groups_num: int = 8
    """Groups trained in turn (the first ones of the manifest)."""
    epochs_num: int = 50
    """Epochs; epoch e trains group e % groups_num."""
    iterations_per_epoch: int = 10000
    """Batches per epoch, whatever the group's size."""
    batch_size: int = 32
    """Images per batch (per process under DDP)."""
    lr: float = 1e-5
    """Adam learning rate of the model."""
    classifiers_lr: float = 0.01
    """Adam learning rate of the CosFace classifiers."""
    classifier_init: str = "random"
    """How a group's CosFace classifier starts: ``random`` (Xavier-uniform, CosPlace) or ``imprint``: when the
    group is first trained, each class's weight row is the mean of its images' L2-normalised descriptors from the
    current model (un-augmented, resized to ``image_size``), as Qi et al. (CVPR 2018, "Low-Shot Learning with
    Imprinted Weights") start new classes; the loss then starts from a classifier that already agrees with the
    descriptors, which matters when each group is trained for few iterations."""
    image_size: int = 512
    """Training images are resized to this square size if they are not already."""
    cosface_s: float = 30.0
    """CosFace scale."""
    cosface_m: float = 0.40
    """CosFace margin."""
    brightness: float = 0.7
    """ColorJitter brightness: factor uniform in [max(0, 1 - x), 1 + x], per image."""
    contrast: float = 0.7
    """ColorJitter contrast factor range, as brightness."""
    saturation: float = 0.7
    """ColorJitter saturation factor range, as brightness."""
    hue: float = 0.5
    """ColorJitter hue shift, uniform in [-x, x] turns."""
    random_resized_crop: float = 0.5
    """RandomResizedCrop keeps an area fraction in [1 - this, 1]."""
    infer_batch_size: int = 16
    """Batch size for validation descriptors."""
    val_image_size: int | None = None
    """Resize validation images to this square size (default: native size, like CosPlace)."""
    num_workers: int = 8
    """DataLoader worker processes."""
    seed: int = 0
    """Seed of sampling, augmentation and initialisation."""
    device: str = "auto"
    """auto (CUDA if available), cpu or cuda."""
    resume: str | None = None
    """Run folder to resume from (its ``last`` checkpoint)."""
    max_failed_fraction: float = 0.01
    """Abort when more than this fraction of training images fail to decode."""
    log_every: int = 0
    """Log a line every N iterations (0: ten lines per epoch)."""
    image_roots: dict[str, str] = field(default_factory=dict)
    """``--image-root COLLECTION=DIR`` overrides: collection -> absolute image folder, for both manifests
    (:mod:`vgtrain.manifest` states how roots resolve without one)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FitError(VgtrainError):
    """A user-facing training error (bad option, manifest, too few groups, too many bad images, a resume that
    does not fit)."""


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_config(config: FitConfig) -> None:
    """:class:`FitError` naming every option out of its range (counts, sizes in pixels, rates, jitter factors)."""
    from vgtrain.backbones import check_backbone

    check_backbone(config.backbone)
    bad = []
    for name in ("groups_num", "epochs_num", "iterations_per_epoch", "batch_size", "image_size", "infer_batch_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            bad.append(f"{_opt(name)} must be an integer >= 1, got {value!r}")
    if config.val_image_size is not None and config.val_image_size < 1:
        bad.append(f"--val-image-size must be >= 1 (pixels) or left out, got {config.val_image_size}")
    for name in ("num_workers", "log_every"):
        if getattr(config, name) < 0:
            bad.append(f"{_opt(name)} must be >= 0, got {getattr(config, name)}")
    for name in ("lr", "classifiers_lr", "cosface_s"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            bad.append(f"{_opt(name)} must be a finite number > 0, got {value!r}")
    for name in ("cosface_m", "brightness", "contrast", "saturation"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            bad.append(f"{_opt(name)} must be a finite number >= 0, got {value!r}")
    if not 0 <= config.hue <= 0.5:
        bad.append(f"--hue must be in [0, 0.5] (turns), got {config.hue!r}")
    if not 0 <= config.random_resized_crop < 1:
        bad.append(
            f"--random-resized-crop must be in [0, 1) (area fraction dropped), got {config.random_resized_crop!r}"
        )
    if not 0 <= config.max_failed_fraction <= 1:
        bad.append(f"max_failed_fraction must be in [0, 1], got {config.max_failed_fraction!r}")
    if config.classifier_init not in ("random", "imprint"):
        bad.append(f"--classifier-init must be random or imprint, got {config.classifier_init!r}")
    if bad:
        raise FitError("; ".join(bad))


RESUME_MUST_MATCH = (
    "backbone",
    "fc_output_dim",
    "train_all_layers",
    "groups_num",
    "iterations_per_epoch",
    "batch_size",
    "lr",
    "classifiers_lr",
    "classifier_init",
    "image_size",
    "cosface_s",
    "cosface_m",
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "random_resized_crop",
    "seed",
)
"""Settings a resumed run must share with the run it resumes (``epochs_num`` may grow: that extends a run)."""


def check_resume(meta: dict[str, Any], config: FitConfig, groups_fingerprint: str) -> None:
    """:class:`FitError` unless ``config`` continues the run of ``meta`` (its ``last.meta.json``).

    The groups manifest (by fingerprint), the model (:data:`RESUME_MUST_MATCH`: backbone, descriptor size,
    trained layers) and the schedule (the rest of it) must be the run's; ``epochs_num`` may grow but not
    end before the epochs already trained. A setting missing from an older meta is taken at its default.
    """
    run = config.resume
    old = meta["config"]
    defaults = {f.name: f.default for f in fields(FitConfig)}
    diffs = []
    trained_on = (meta.get("fingerprints") or {}).get("groups")
    if trained_on and trained_on != groups_fingerprint:
        diffs.append(
            f"--groups {config.groups} is another groups manifest (fingerprint {groups_fingerprint[:12]}) than the "
            f"run's {old.get('groups', '?')} ({trained_on[:12]})"
        )
    for name in RESUME_MUST_MATCH:
        before, now = old.get(name, defaults[name]), getattr(config, name)
        if before != now:
            diffs.append(f"{_opt(name)} is {now!r} but the run used {before!r}")
    if config.epochs_num < meta["epoch"] + 1:
        diffs.append(
            f"--epochs-num {config.epochs_num} ends before the {meta['epoch'] + 1} epoch(s) already trained; "
            "pass a larger --epochs-num to extend the run"
        )
    if diffs:
        raise FitError(
            f"cannot resume {run}: {'; '.join(diffs)}. Pass the run's settings (see {run}/last.meta.json) "
            "or train a new run in another --out folder"
        )
