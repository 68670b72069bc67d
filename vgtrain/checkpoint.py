"""Checkpoints: weights ``<tag>.pt`` + training state ``<tag>.state.pt`` + readable ``<tag>.meta.json``.

* ``<tag>.pt``: the unwrapped model's ``state_dict`` only, in CosPlace's layout, so it loads into
  CosPlace's network (and ``vgtrain eval`` rebuilds the model from ``meta.json``'s ``model_args``).
* ``<tag>.state.pt``: model optimiser, every group's classifier and its optimiser, and the RNG
  states; what ``--resume`` needs beyond the weights.
* ``<tag>.meta.json``: config, epoch, group cursor, best recall, manifest fingerprints, model args.

Tags are ``last`` (after every epoch) and ``best`` (best validation recall@1). Files are written
under temporary names and renamed (:func:`vgtrain.fsio.atomic_path`), meta last. Every file is
read with ``torch.load(weights_only=True)``: only tensors, containers, numbers and strings are
built, so a crafted pickle runs nothing; the RNG states are stored in those forms (see
:func:`rng_state`).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgtrain.errors import CheckpointError
from vgtrain.fsio import atomic_path, atomic_write_text


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
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_meta(run_dir: Path, tag: str, meta: dict) -> None:
    """Write ``<tag>.meta.json`` atomically (a temporary file renamed over it): readers see the old or the new one."""
    atomic_write_text(
        Path(run_dir) / f"{tag}.meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    )


_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_UNPICKLING_DETAIL = re.compile(r"Unsupported operand \d+")


def load_file(path: str | os.PathLike, *, what: str, advice: str, data: bytes | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; any file that cannot be used is a :class:`CheckpointError`.

    ``weights_only`` loading builds only tensors, dicts, lists, tuples, numbers, strings and None:
    a pickle that refers to any other Python object (a function to call, a class to build) is
    refused before anything of it runs. ``what`` names the file in the message ("training state",
    "weights", ...) and ``advice`` says what to do. ``data``: the file's bytes, already read.
    """
    path = Path(path)
    if data is None and not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist{' (a folder)' if path.is_dir() else ''}; {advice}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: not the user's business
            return torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        m = _REFUSED_GLOBAL.search(str(e))
        if m:
            raise CheckpointError(
                f"{what} {path} is not a plain checkpoint: it refers to the Python object {m[1]}, and vgtrain "
                f"loads only tensors, numbers and strings from files, never code; {advice}"
            ) from None
        detail = _UNPICKLING_DETAIL.search(str(e))
        raise CheckpointError(
            f"{what} {path} is not a plain checkpoint (damaged, or not written by torch.save"
            f"{': ' + detail[0] if detail else ''}); {advice}"
        ) from None
    except OSError:
        raise  # permission denied and the like: the CLI names the path
    except Exception as e:  # torch's parser raises a dozen types (EOFError, RuntimeError, KeyError, IndexError,
        # UnicodeDecodeError, zlib/struct errors, ...) on damaged bytes; each means "this file", nothing else
        reason = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"{what} {path} is truncated or corrupt ({type(e).__name__}{': ' + reason if reason else ''}); {advice}"
        ) from None


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items())


def load_weights(path: str | os.PathLike, *, what: str, advice: str, data: bytes | None = None) -> dict:
    """A state dict (tensor name -> tensor) from ``path`` by :func:`load_file`; CheckpointError if it holds anything else.

    A dict with a ``model_state_dict`` entry (how some CosPlace checkpoints wrap the weights) gives that entry.
    """
    obj = load_file(path, what=what, advice=advice, data=data)
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not _is_state_dict(obj):
        raise CheckpointError(f"{what} {path} does not hold a state dict (tensor names to tensors); {advice}")
    return dict(obj)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, and CUDA when present) RNG states, in forms ``weights_only`` loading accepts.

    Python's: ``(version, tuple of 625 ints, gauss_next)``; numpy's legacy MT19937 state as a dict
    (``name``, ``key`` as an int64 tensor of the 624 uint32 words, ``pos``, ``has_gauss``,
    ``cached_gaussian``); torch's and CUDA's are uint8 tensors.
    """
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (after a save and a load)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    key = n["key"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], key, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, tag: str, *, model_state: dict, train_state: dict | None, meta: dict) -> None:
    """Write ``<tag>.pt``, ``<tag>.state.pt`` (when given) and ``<tag>.meta.json`` (last), each atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(model_state, run_dir / f"{tag}.pt")
    if train_state is not None:
        _atomic_torch_save(train_state, run_dir / f"{tag}.state.pt")
    write_meta(run_dir, tag, meta)


_FIT_ADVICE = "pass the --out folder of an earlier `vgtrain fit` (or start a new run without --resume)"


def load_meta(run_dir: Path, tag: str = "last") -> dict:
    """The meta.json of a checkpoint; :class:`CheckpointError` with what to do when there is none or it is unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / f"{tag}.meta.json"
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; {_FIT_ADVICE}")
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint {tag!r} in {run_dir} (expected {path.name}); was it written by vgtrain fit? {_FIT_ADVICE}"
        )
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({e}); the checkpoint is damaged, {_FIT_ADVICE}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("epoch"), int) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} lacks epoch or config; the checkpoint is damaged, {_FIT_ADVICE}")
    return meta


_STATE_KEYS = ("model_optimizer", "classifiers", "classifier_optimizers", "rng")


def load(run_dir: Path, tag: str = "last") -> tuple[dict, dict | None, dict]:
    """(model state_dict, training state or None, meta) of a checkpoint, all on CPU, loaded with ``weights_only``.

    Raises :class:`CheckpointError` naming the file when one is missing, truncated, corrupt or not a
    plain tensor file (a training state of an earlier vgtrain, which pickled numpy RNG objects, is one).
    """
    run_dir = Path(run_dir)
    meta = load_meta(run_dir, tag)
    advice = f"the checkpoint in {run_dir} is damaged or not vgtrain's; resume from another run or start a new one"
    weights = load_weights(run_dir / f"{tag}.pt", what="weights", advice=advice)
    state_path = run_dir / f"{tag}.state.pt"
    state = None
    if state_path.is_file():
        state = load_file(state_path, what="training state", advice=advice)
        if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS):
            raise CheckpointError(f"training state {state_path} lacks {', '.join(_STATE_KEYS)}; {advice}")
    return weights, state, meta
