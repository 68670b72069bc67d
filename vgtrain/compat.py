"""Compatibility shims for the torch stack on this project's CPU-only machines.

Why this exists: the torchvision release that pins the CPU torch wheel (0.28.0 for
torch 2.13.0+cpu) only ships a CUDA build. Its compiled ``_C`` extension cannot be
loaded next to the CPU torch, so the ``torchvision::*`` operators are never
registered, and ``import torchvision`` then dies in ``_meta_registrations`` with
``RuntimeError: operator torchvision::nms does not exist`` (pytorch/vision issue
9085): that module calls ``torch.library.register_fake`` on ``nms`` and ``qnms``
without first checking that the extension loaded. Declaring those two schemas
ourselves (no kernels) lets the import finish; ``torchvision.models`` and
``torchvision.transforms.v2`` then work on CPU, while ``torchvision.ops.nms`` and
``torchvision.io`` do not (vgtrain reads images with Pillow).

Only ``import_torchvision`` should be used to import torchvision inside vgtrain.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

import torch

__all__ = ["import_torchvision"]

# The schemas torchvision's _meta_registrations.py registers fakes for, exactly as
# its compiled extension declares them (csrc/ops/nms.cpp, csrc/ops/quantized/cpu/qnms_kernel.cpp).
_FAKE_REGISTERED_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)

# Kept alive for the life of the process: a torch.library.Library removes its
# definitions when it is garbage-collected.
_TORCHVISION_FRAGMENT: torch.library.Library | None = None
_LOCK = threading.Lock()


def _is_missing_op_error(exc: BaseException) -> bool:
    msg = str(exc)
    return "torchvision::" in msg and "does not exist" in msg


def _extension_failed_to_load() -> bool:
    """Tell whether the half-imported torchvision reports that its ``_C`` extension did not load."""
    extension = sys.modules.get("torchvision.extension")
    has_ops = getattr(extension, "_has_ops", None)
    return callable(has_ops) and not has_ops()


def _forget_torchvision() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def _op_exists(name: str) -> bool:
    try:
        torch._C._get_schema(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def import_torchvision() -> ModuleType:
    """Import and return ``torchvision``, declaring its missing op schemas if its ``_C`` cannot load.

    The schemas are declared only when the first import fails with "operator
    torchvision::... does not exist" *and* torchvision reports that its compiled
    extension did not load; any other failure is re-raised unchanged. Calling this
    again returns the already-imported module.
    """
    global _TORCHVISION_FRAGMENT
    with _LOCK:
        module = sys.modules.get("torchvision")
        if module is not None and hasattr(module, "models"):
            return module
        try:
            return importlib.import_module("torchvision")
        except RuntimeError as exc:
            if not (_is_missing_op_error(exc) and _extension_failed_to_load()):
                raise
            first_error = exc
        _forget_torchvision()
        if _TORCHVISION_FRAGMENT is None:
            lib = torch.library.Library("torchvision", "FRAGMENT")
            for schema in _FAKE_REGISTERED_SCHEMAS:
                if not _op_exists(schema.split("(", 1)[0]):
                    lib.define(schema)
            _TORCHVISION_FRAGMENT = lib
        try:
            return importlib.import_module("torchvision")
        except RuntimeError as exc:
            _forget_torchvision()
            raise RuntimeError(
                f"torchvision still fails to import after declaring its nms/qnms schemas: {exc}. "
                "Install a torchvision build that matches torch "
                f"{torch.__version__} (pip install -c constraints-cpu.txt -e '.[train]')."
            ) from first_error
