"""``vgtrain eval``: recall@N of a model on an eval manifest, predictions table, report.

The command's library (weights, baselines, search, outputs); recall@N itself and descriptors are
:mod:`vgtrain.recall`'s, shared with ``vgtrain fit``'s validation.

Reads the eval manifest written by ``vgdata eval-set`` (pyarrow only), computes descriptors
for the database (batched) and the queries (batched by equal size, or resized with
``--image-size``), searches the top 20 with faiss (GPU index when faiss sees a GPU; torch
matmul+topk without faiss) and reports recall@1/5/10/20 as CosPlace defines it: a query is
found at N when a positive is among its top N; queries without positives stay in the
denominator. An eval set with several radii (``vgdata eval-set --threshold 25 --threshold 10``)
also gets ``recalls_by_threshold`` (``{"10": {1: .., 5: ..}, "25": {..}}``, radius keys as text,
:func:`vgtrain.manifest.threshold_key`) from the same predictions (those of the flat index when both
were searched; the primary radius's row equals ``recalls``), and the protocol's
``positives_by_threshold`` states per radius the queries without a positive and the mean positives
(MSLS and the gsv family drop such queries; CosPlace keeps them as misses, as here).
Writes ``predictions.parquet``, ``recalls.json`` (recalls + protocol) and
``report.html`` in ``--out``, each atomically (:func:`vgtrain.fsio.atomic_path`).
With ``--descriptors DESC_DIR`` (written by ``vgtrain embed``, :mod:`vgtrain.descriptors`) the
descriptors are read instead of computed and the flat search streams the database shard by shard
(:func:`vgtrain.knn.search_streamed`); the outputs are the same.

Weights: a run folder (``best``, else ``last``), a ``<tag>.pt`` of ours (model rebuilt from its
``<tag>.meta.json``), or a CosPlace-layout state dict (``--backbone``; the descriptor size is
read from ``aggregation.3.weight``). Two untrained baselines need no file: ``imagenet``
(``--backbone EfficientNetLite0``: the shipped ImageNet backbone + L2Norm, GeM p=3, L2Norm, no
Linear layer; 1280-D) and ``random`` (``--backbone NAME --seed S --fc-output-dim D``: the full
CosPlace model randomly initialised after ``torch.manual_seed(S)``).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgtrain.errors import CheckpointError, VgtrainError
from vgtrain.fsio import atomic_path, atomic_write_text
from vgtrain.knn import NO_FAISS_IVFPQ, IndexSpec, _check_ivfpq, _faiss, search, search_streamed
from vgtrain.recall import RECALL_VALUES, compute_descriptors, recalls_by_threshold, recalls_from_hits


@dataclass
class EvalConfig:
    """Parameters of ``vgtrain eval``."""

    weights: str | None
    """Run folder, checkpoint .pt (ours or CosPlace's state dict), ``imagenet`` or ``random`` (untrained baselines);
    None only with ``descriptors``."""
    eval_set: str
    """Eval manifest (``vgdata eval-set``)."""
    out: str
    """Output folder: predictions.parquet, recalls.json, report.html."""
    backbone: str | None = None
    """Backbone of a plain state dict without meta.json, or of ``imagenet``/``random`` (ResNet18, ..., EfficientNetLite0)."""
    seed: int = 0
    """``--weights random`` only: torch.manual_seed before building the model."""
    fc_output_dim: int = 512
    """``--weights random`` only: descriptor dimension (output of the Linear layer)."""
    image_size: int | None = None
    """Resize database and query images to this square size (default: native size)."""
    batch_size: int = 16
    """Images per descriptor batch."""
    num_workers: int = 4
    """DataLoader workers."""
    device: str = "auto"
    """auto, cpu or cuda."""
    index: str = "flat"
    """flat (exact), ivfpq (approximate) or both (reports the recall IVF-PQ loses)."""
    ivfpq: IndexSpec = field(default_factory=lambda: IndexSpec(kind="ivfpq", rerank=64))
    """IVF-PQ parameters (nlist, m, nbits, nprobe, rerank); defaults: the setting bench/knn.py measured."""
    num_preds_to_save: int = 20
    """Queries shown in the report, wrong ones first."""
    image_roots: dict[str, str] = field(default_factory=dict)
    """``--image-root COLLECTION=DIR`` overrides: collection -> absolute image folder (:mod:`vgtrain.manifest`
    states how roots resolve without one)."""
    descriptors: str | None = None
    """Folder written by ``vgtrain embed`` for this eval manifest: its descriptors are read instead of computed
    (flat search streamed shard by shard); with ``weights`` too, they must come from that checkpoint."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EvalError(VgtrainError):
    """A user-facing evaluation error."""


_WEIGHTS_ADVICE = "pass a run folder written by `vgtrain fit`, one of its .pt files or a state dict saved by torch.save"


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{path} is not readable JSON ({e}); the checkpoint is damaged, {_WEIGHTS_ADVICE}"
        ) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model_args"), dict):
        raise CheckpointError(f"{path} lacks model_args; the checkpoint is damaged, {_WEIGHTS_ADVICE}")
    return meta


BASELINES = ("imagenet", "random")
"""``--weights`` values that evaluate an untrained model instead of a file (see :func:`load_model`)."""


def resolve_weights(path: str) -> tuple[Path, dict | None]:
    """(weights file, meta dict or None) for a run folder, one of our .pt files, or a plain state dict.

    ``imagenet`` and ``random`` are not files: :func:`load_model` handles them before calling this.
    """
    if path in BASELINES:
        raise EvalError(f"--weights {path} is an untrained baseline, not a file: use load_model")
    p = Path(path)
    if p.is_dir():
        for tag in ("best", "last"):
            if (p / f"{tag}.pt").is_file():
                meta = p / f"{tag}.meta.json"
                if not meta.is_file():
                    raise CheckpointError(f"{p / f'{tag}.pt'} has no {meta.name} beside it; {_WEIGHTS_ADVICE}")
                return p / f"{tag}.pt", _read_meta(meta)
        raise EvalError(f"no best.pt or last.pt in {p}; pass a run folder written by `vgtrain fit` or a .pt file")
    if not p.is_file():
        raise EvalError(f"weights not found: {p} (pass a run folder, a .pt file, `imagenet` or `random`)")
    meta = p.with_name(p.name[: -len(".pt")] + ".meta.json") if p.name.endswith(".pt") else None
    return p, (_read_meta(meta) if meta is not None and meta.is_file() else None)


def _load_baseline(config: EvalConfig):
    """load_model for ``--weights imagenet`` / ``--weights random`` (no checkpoint file)."""
    from vgtrain.checkpoint import weights_digest
    from vgtrain.model import BACKBONES, build_model, imagenet_weights_path

    kind = config.weights
    if config.backbone is None:
        need = "EfficientNetLite0" if kind == "imagenet" else f"NAME ({', '.join(BACKBONES)})"
        raise EvalError(f"--weights {kind} needs --backbone {need}")
    if kind == "imagenet":
        path = imagenet_weights_path(config.backbone)  # ModelError for backbones without shipped weights
        model = build_model(config.backbone, fc_output_dim=None, backbone_weights="imagenet")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        args = {"backbone": config.backbone, "fc_output_dim": None, "train_all_layers": False}
        args |= {"weights": "imagenet", "head": "gem", "descriptor_dim": model.descriptor_dim}
        return model, args, path, digest, None
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-init warning: random init is the point here
        torch.manual_seed(config.seed)
        model = build_model(config.backbone, fc_output_dim=config.fc_output_dim)
    args = {"backbone": config.backbone, "fc_output_dim": config.fc_output_dim, "train_all_layers": False}
    args |= {"weights": "random", "seed": config.seed, "head": "gem+linear", "descriptor_dim": model.descriptor_dim}
    return model, args, None, weights_digest(model)[:16], None


def load_model(config: EvalConfig):
    """(model with its weights, model args, weights file, its sha256 (first 16 hex digits), meta or None).

    Baselines (``config.weights`` in :data:`BASELINES`, no checkpoint):

    * ``imagenet``: ``build_model(backbone, fc_output_dim=None, backbone_weights="imagenet")``, the
      off-the-shelf network (ImageNet backbone, L2Norm, GeM p=3, L2Norm, no Linear layer; only
      EfficientNetLite0 ships weights). Weights file: the shipped ``.pth``; digest: its sha256.
    * ``random``: the full CosPlace model (head with Linear, ``config.fc_output_dim``) built right
      after ``torch.manual_seed(config.seed)`` (the caller's RNG state is restored afterwards).
      Weights file: None; digest: sha256 of the model's state dict (each entry's name, dtype,
      shape and bytes, in order), so the same seed on the same torch/timm gives the same digest.

    Their model args add ``weights`` (``imagenet``/``random``), ``seed`` (random), ``head``
    (``gem`` or ``gem+linear``) and ``descriptor_dim`` to :func:`vgtrain.model.model_args`'s keys.
    """
    from vgtrain.checkpoint import load_weights
    from vgtrain.model import ModelError, build_model, load_state_dict_checked

    if config.weights in BASELINES:
        return _load_baseline(config)
    path, meta = resolve_weights(config.weights)
    data = path.read_bytes()  # read once: loaded and hashed
    state = load_weights(path, what="weights", advice=_WEIGHTS_ADVICE, data=data)  # unwraps model_state_dict
    if meta is not None:
        args = {
            k: meta["model_args"][k]
            for k in ("backbone", "fc_output_dim", "train_all_layers")
            if k in meta["model_args"]
        }
    else:
        if config.backbone is None:
            raise EvalError(f"{path} has no .meta.json beside it: pass --backbone (ResNet18, ResNet50, ...)")
        if "aggregation.3.weight" not in state:
            raise EvalError(f"{path} is not a CosPlace-layout state dict (no aggregation.3.weight)")
        args = {"backbone": config.backbone, "fc_output_dim": int(state["aggregation.3.weight"].shape[0])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random init is replaced by the weights
        model = build_model(**args)
    try:
        load_state_dict_checked(model, state)
    except ModelError as e:
        raise EvalError(f"{path}: {e}") from None
    return model, args, path, hashlib.sha256(data).hexdigest()[:16], meta


def eval_set_name(path: str | Path) -> str:
    """The short name of an eval manifest: ``manifests/eval_queries_v1.parquet`` -> ``queries_v1``."""
    stem = Path(path).name.removesuffix(".parquet")
    return stem.removeprefix("eval_") or stem


def run_evals(config: EvalConfig, eval_sets: list[str]) -> list[dict[str, Any]]:
    """Evaluate one model on several eval sets: ``config.out/<eval set name>/`` each (see :func:`eval_set_name`).

    The model is loaded once, and database descriptors are computed once for every eval set whose
    database is the same list of images (SF-XL's v1, v2, night and occlusion queries share one test
    database). Each folder holds exactly what :func:`run_eval` writes for that eval set alone.
    """
    from vgtrain.manifest import EvalManifest, check_image_roots

    if config.descriptors is not None and len(eval_sets) > 1:
        raise EvalError("--descriptors holds one eval manifest's descriptors: give one --eval-set with it")
    names = [eval_set_name(e) for e in eval_sets]
    if len(set(names)) != len(names):
        raise EvalError(f"two eval sets share a name ({', '.join(names)}): their folders under --out would clash")
    files = [EvalManifest.open(e) for e in eval_sets]  # every file's metadata checked before any work
    check_image_roots(config.image_roots, *files)
    shared: dict[str, Any] = {}
    return [
        run_eval(replace(config, eval_set=e, out=str(Path(config.out) / n)), _shared=shared, _file=f)
        for e, n, f in zip(eval_sets, names, files, strict=True)
    ]


def run_eval(config: EvalConfig, *, _shared: dict[str, Any] | None = None, _file=None) -> dict[str, Any]:
    """Evaluate; write predictions.parquet, recalls.json and report.html; return the recalls.json content.

    ``_shared`` (used by :func:`run_evals`) carries the loaded model and the last database's
    descriptors from one call to the next; ``_file``, the eval manifest already opened (and its
    ``--image-root`` overrides checked) by :func:`run_evals`. The manifest's rows are read once.
    """
    import pyarrow.parquet as pq

    from vgtrain.dist import setup
    from vgtrain.manifest import EvalManifest, check_image_roots, threshold_key
    from vgtrain.stats import (
        LEVEL,
        METHOD,
        RESAMPLES,
        SEED,
        bootstrap_interval,
        first_hit_rank,
        hits_from_first_rank,
        is_positive,
    )

    check_config(config)
    device = setup(config.device).device  # a device torch lacks fails here, before any work
    if _file is None:
        _file = EvalManifest.open(config.eval_set)
        check_image_roots(config.image_roots, _file)
    manifest = EvalManifest.load(_file, config.image_roots)
    if not manifest.queries:
        raise EvalError(f"{config.eval_set} has no query images; rebuild it with `vgdata eval-set`")
    shared = {} if _shared is None else _shared
    stored = None
    if config.descriptors is not None:
        from vgtrain.descriptors import stored_for_eval

        stored = stored_for_eval(config, manifest, shared, load_model)
        args, weights_path, digest, meta, dim = stored.model_info
    else:
        if config.weights is None:
            raise EvalError("--weights is required (or --descriptors DESC_DIR from `vgtrain embed`)")
        if "model" not in shared:
            shared["model"] = load_model(config)
        model, args, weights_path, digest, meta = shared["model"]
        dim = model.descriptor_dim
    if config.index != "flat":  # before the descriptors: an IVF-PQ that cannot be built fails now, not after them
        if _faiss() is None:
            raise EvalError(f"--index {config.index}: {NO_FAISS_IVFPQ}")
        try:
            _check_ivfpq(config.ivfpq, len(manifest.database), dim)
        except ValueError as e:
            raise EvalError(f"--index {config.index}: {e}") from None
    warning = None
    trained_on = (meta or {}).get("fingerprints", {}).get("val")
    if trained_on and trained_on != manifest.catalog_fingerprint:
        warning = (
            f"the eval manifest comes from catalog version {manifest.catalog_fingerprint[:12]}, the model was "
            f"validated on {trained_on[:12]}: another catalog or a rebuilt one"
        )
    common = {"image_size": config.image_size, "batch_size": config.batch_size, "num_workers": config.num_workers}
    t0 = time.perf_counter()
    db_key = (tuple(manifest.database), config.image_size)
    reused = stored is None and shared.get("db_key") == db_key
    if stored is not None:  # database streamed by the flat search (or read whole for IVF-PQ), queries read
        db, q = stored.database, stored.queries
    else:
        model = model.to(device, memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU
        if not reused:
            shared["db"] = compute_descriptors(
                model, manifest.database, sizes=manifest.database_sizes, device=device, **common
            )
            shared["db_key"] = db_key
        db = shared["db"]
        q = compute_descriptors(model, manifest.queries, sizes=manifest.query_sizes, device=device, **common)
    t_desc = time.perf_counter() - t0
    k = min(max(RECALL_VALUES), len(manifest.database))
    results, predictions, by_threshold = {}, None, {}
    timings: dict[str, Any] = {"descriptors_s": round(t_desc, 3), "database_descriptors_reused": reused}
    intervals: dict[str, dict[int, list[float]]] = {}
    values = tuple(n for n in RECALL_VALUES if n <= k) or (1,)
    kinds = ["flat", "ivfpq"] if config.index == "both" else [config.index]
    for kind in kinds:
        t = time.perf_counter()
        dist, idx = _search(db, q, k, kind, config)
        timings[f"search_{kind}_s"] = round(time.perf_counter() - t, 3)
        positive = is_positive(idx, manifest.positives)  # (Q, k): the one membership test per search
        found = hits_from_first_rank(first_hit_rank(positive), values)  # per query: found at N
        results[kind] = recalls_from_hits(found, values)
        intervals[kind] = {
            n: list(bootstrap_interval(found[:, j], RESAMPLES, SEED, LEVEL)) for j, n in enumerate(values)
        }
        if predictions is None:
            predictions = _predictions_table(dist, idx, positive, manifest)
            by_threshold = {
                threshold_key(t): r
                for t, r in recalls_by_threshold(idx, manifest.positives_by_threshold, values).items()
            }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "predictions.parquet") as tmp:
        pq.write_table(predictions, tmp)
    mean_positives = float(np.mean([len(p) for p in manifest.positives]))  # queries without positives count 0
    protocol = {
        "eval_set": str(Path(config.eval_set).resolve()),
        "database": manifest.params.get("database"),
        "queries": manifest.params.get("queries"),
        "n_database": len(manifest.database),
        "n_queries": len(manifest.queries),
        "queries_without_positives": int(sum(len(p) == 0 for p in manifest.positives)),
        "mean_positives": mean_positives,
        "chance_level": 100.0 * mean_positives / len(manifest.database),
        "eval_set_fingerprint": manifest.set_fingerprint,
        "threshold_m": manifest.params.get("threshold"),
        "thresholds_m": sorted(manifest.positives_by_threshold),
        "positives_by_threshold": {
            threshold_key(t): {
                "queries_without_positives": int(sum(len(p) == 0 for p in lists)),
                "mean_positives": float(np.mean([len(p) for p in lists])),
            }
            for t, lists in manifest.positives_by_threshold.items()
        },
        "image_size": (stored.image_size if stored is not None else config.image_size) or "native",
        "model": args,
        "checkpoint": str(weights_path.resolve()) if weights_path is not None else None,  # None: --weights random
        "checkpoint_sha256": digest,
        "catalog_fingerprint": manifest.catalog_fingerprint,
        "index": config.index,
        "ivfpq": _ivfpq_protocol(config.ivfpq, len(manifest.database)) if config.index != "flat" else None,
        "device": str(device),
        "timings": timings,
    }
    bootstrap = {"resamples": RESAMPLES, "seed": SEED, "level": LEVEL, "method": METHOD}
    report = {
        "recalls": results,
        "recalls_by_threshold": by_threshold,
        "intervals": intervals,
        "bootstrap": bootstrap,
        "protocol": protocol,
        "warning": warning,
    }
    if "ivfpq" in results and "flat" in results:
        report["ivfpq_recall_lost"] = {n: round(results["flat"][n] - results["ivfpq"][n], 3) for n in results["flat"]}
    atomic_write_text(out / "recalls.json", json.dumps(report, indent=2, default=str) + "\n")
    try:
        from vgtrain.report import write_report
    except ImportError:  # pragma: no cover - the report module ships with vgtrain
        write_report = None
    if write_report is not None:
        report["report"] = str(
            write_report(
                out,
                recalls=results,
                recalls_by_threshold=by_threshold,
                intervals=intervals,
                bootstrap=bootstrap,
                protocol=protocol,
                predictions=predictions,
                manifest=manifest,
                num_preds_to_save=config.num_preds_to_save,
            )
        )
    return report


def _search(db, q: np.ndarray, k: int, kind: str, config: EvalConfig):
    """kNN of ``q`` in ``db``: an array, or stored descriptors (flat: streamed shard by shard; IVF-PQ: read whole)."""
    if not isinstance(db, np.ndarray):
        if kind == "flat":
            return search_streamed(db.shards(), q, k)
        db = db.array()
    return search(db, q, k, replace(config.ivfpq, kind=kind))  # options checked in run_eval


def check_config(config: EvalConfig) -> None:
    """:class:`EvalError` for an option out of its range (sizes in pixels and images, counts)."""
    bad = []
    if config.index not in ("flat", "ivfpq", "both"):
        bad.append(f"--index must be flat, ivfpq or both, got {config.index!r}")
    if config.image_size is not None and config.image_size < 1:
        bad.append(f"--image-size must be >= 1 (pixels) or left out, got {config.image_size}")
    for name, low in (("batch_size", 1), ("fc_output_dim", 1), ("num_workers", 0), ("num_preds_to_save", 0)):
        value = getattr(config, name)
        if value < low:
            bad.append(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if bad:
        raise EvalError("; ".join(bad))


def _ivfpq_protocol(spec: IndexSpec, n: int) -> dict[str, int]:
    """The IVF-PQ parameters used for a database of ``n`` images, automatic values resolved."""
    nlist, train = spec.resolved(n)
    return {"nlist": nlist, "m": spec.m, "nbits": spec.nbits, "nprobe": min(spec.nprobe, nlist), "train_size": train,
            "rerank": spec.rerank}  # fmt: skip


def _predictions_table(dist: np.ndarray, idx: np.ndarray, positive: np.ndarray, manifest):
    import pyarrow as pa

    db_ids, q_ids = manifest.database_ids, manifest.query_ids  # read with the manifest, in idx order
    nq, k = idx.shape
    return pa.table(
        {
            "query_idx": pa.array(np.repeat(np.arange(nq), k), pa.int32()),
            "query_image_id": pa.array(np.repeat(q_ids, k), pa.int64()),
            "rank": pa.array(np.tile(np.arange(k), nq), pa.int16()),
            "database_idx": pa.array(idx.reshape(-1), pa.int32()),
            "database_image_id": pa.array(db_ids[idx.reshape(-1)], pa.int64()),
            "distance": pa.array(dist.reshape(-1), pa.float32()),
            "is_positive": pa.array(positive.reshape(-1), pa.bool_()),
        }
    )
