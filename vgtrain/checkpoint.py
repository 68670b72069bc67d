"""Checkpoints: weights ``<tag>.pt`` + training state ``<tag>.state.pt`` + readable ``<tag>.meta.json``.

* ``<tag>.pt``: the unwrapped model's ``state_dict`` only, in CosPlace's layout, so it loads into
  CosPlace's network (and ``vgtrain eval`` rebuilds the model from ``meta.json``'s ``model_args``).
* ``<tag>.state.pt``: model optimiser, every group's classifier and its optimiser, and the RNG
  states; what ``--resume`` needs beyond the weights.
* ``<tag>.meta.json``: config, epoch, group cursor, best recall, manifest fingerprints, model args.

Tags are ``last`` (after every epoch) and ``best`` (best validation recall@1). Files are written
under temporary names and renamed, meta last.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 (hex) of a model's weights: every state-dict entry's name, dtype, shape and bytes, in order.

    Equal on two processes or runs exactly when their weights are bit-identical (the DDP ranks'
    check, the seeded random baseline of ``vgtrain eval``).
    """
    import hashlib

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, and CUDA when present) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, tag: str, *, model_state: dict, train_state: dict | None, meta: dict) -> None:
    """Write ``<tag>.pt``, ``<tag>.state.pt`` (when given) and ``<tag>.meta.json`` (last)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(model_state, run_dir / f"{tag}.pt")
    if train_state is not None:
        _atomic_torch_save(train_state, run_dir / f"{tag}.state.pt")
    tmp = run_dir / f".tmp-{tag}.meta.json"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, run_dir / f"{tag}.meta.json")


def load_meta(run_dir: Path, tag: str = "last") -> dict:
    """The meta.json of a checkpoint; ValueError with what to do when there is none."""
    path = Path(run_dir) / f"{tag}.meta.json"
    if not path.is_file():
        raise ValueError(f"no checkpoint {tag!r} in {run_dir} (expected {path.name}); was it written by vgtrain fit?")
    return json.loads(path.read_text())


def load(run_dir: Path, tag: str = "last") -> tuple[dict, dict | None, dict]:
    """(model state_dict, training state or None, meta) of a checkpoint, all on CPU."""
    run_dir = Path(run_dir)
    meta = load_meta(run_dir, tag)
    weights = torch.load(run_dir / f"{tag}.pt", map_location="cpu", weights_only=True)
    state_path = run_dir / f"{tag}.state.pt"
    state = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.is_file() else None
    return weights, state, meta
