"""``vgtrain eval``: recall@N of a model on an eval manifest, predictions table, report.

Reads the eval manifest written by ``vgdata eval-set`` (pyarrow only), computes descriptors
for the database (batched) and the queries (batched by equal size, or resized with
``--image-size``), searches the top 20 with faiss (GPU index when faiss sees a GPU; torch
matmul+topk without faiss) and reports recall@1/5/10/20 as CosPlace defines it: a query is
found at N when a positive is among its top N; queries without positives stay in the
denominator. Writes ``predictions.parquet``, ``recalls.json`` (recalls + protocol) and
``report.html`` in ``--out``.

Weights: a run folder (``best``, else ``last``), a ``<tag>.pt`` of ours (model rebuilt from its
``<tag>.meta.json``), or a CosPlace-layout state dict (``--backbone``; the descriptor size is
read from ``aggregation.3.weight``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vgtrain.evaluate import RECALL_VALUES, compute_descriptors, recalls
from vgtrain.knn import IndexSpec, search


@dataclass
class EvalConfig:
    """Parameters of ``vgtrain eval``."""

    weights: str
    """Run folder, checkpoint .pt (ours or CosPlace's state dict)."""
    eval_set: str
    """Eval manifest (``vgdata eval-set``)."""
    out: str
    """Output folder: predictions.parquet, recalls.json, report.html."""
    backbone: str | None = None
    """Backbone of a plain state dict without meta.json (ResNet18, ResNet50, ...)."""
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EvalError(ValueError):
    """A user-facing evaluation error."""


def resolve_weights(path: str) -> tuple[Path, dict | None]:
    """(weights file, meta dict or None) for a run folder, one of our .pt files, or a plain state dict."""
    p = Path(path)
    if p.is_dir():
        for tag in ("best", "last"):
            if (p / f"{tag}.pt").is_file():
                return p / f"{tag}.pt", json.loads((p / f"{tag}.meta.json").read_text())
        raise EvalError(f"no best.pt or last.pt in {p}; pass a run folder written by `vgtrain fit` or a .pt file")
    if not p.is_file():
        raise EvalError(f"weights not found: {p}")
    meta = p.with_name(p.name[: -len(".pt")] + ".meta.json") if p.name.endswith(".pt") else None
    return p, (json.loads(meta.read_text()) if meta is not None and meta.is_file() else None)


def load_model(config: EvalConfig):
    """(model with its weights, model args, weights file, its sha256 (first 16 hex digits), meta or None)."""
    from vgtrain.model import build_model, load_state_dict_checked

    path, meta = resolve_weights(config.weights)
    data = path.read_bytes()  # read once: loaded and hashed
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model_state_dict" in state:  # some CosPlace checkpoints wrap it
        state = state["model_state_dict"]
    if meta is not None:
        args = meta["model_args"]
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
    except ValueError as e:
        raise EvalError(f"{path}: {e}") from None
    return model, args, path, hashlib.sha256(data).hexdigest()[:16], meta


def run_eval(config: EvalConfig) -> dict[str, Any]:
    """Evaluate; write predictions.parquet, recalls.json and report.html; return the recalls.json content."""
    import pyarrow.parquet as pq

    from vgtrain.data import EvalManifest
    from vgtrain.dist import setup

    if config.index not in ("flat", "ivfpq", "both"):
        raise EvalError(f"--index must be flat, ivfpq or both, got {config.index!r}")
    manifest = EvalManifest.read(config.eval_set)
    if not manifest.queries:
        raise EvalError(f"{config.eval_set} has no query images; rebuild it with `vgdata eval-set`")
    model, args, weights_path, digest, meta = load_model(config)
    warning = None
    trained_on = (meta or {}).get("fingerprints", {}).get("val")
    if trained_on and trained_on != manifest.catalog_fingerprint:
        warning = (
            f"the eval manifest comes from catalog version {manifest.catalog_fingerprint[:12]}, the model was "
            f"validated on {trained_on[:12]}: another catalog or a rebuilt one"
        )
    device = setup(config.device).device
    model = model.to(device)
    common = {"image_size": config.image_size, "batch_size": config.batch_size, "num_workers": config.num_workers}
    t0 = time.perf_counter()
    db = compute_descriptors(model, manifest.database, sizes=manifest.database_sizes, device=device, **common)
    q = compute_descriptors(model, manifest.queries, sizes=manifest.query_sizes, device=device, **common)
    t_desc = time.perf_counter() - t0
    k = min(max(RECALL_VALUES), len(manifest.database))
    results, timings, predictions = {}, {"descriptors_s": round(t_desc, 3)}, None
    kinds = ["flat", "ivfpq"] if config.index == "both" else [config.index]
    for kind in kinds:
        t = time.perf_counter()
        dist, idx = _search(db, q, k, kind, config)
        timings[f"search_{kind}_s"] = round(time.perf_counter() - t, 3)
        results[kind] = recalls(idx, manifest.positives, tuple(n for n in RECALL_VALUES if n <= k) or (1,))
        if predictions is None:
            predictions = _predictions_table(dist, idx, manifest)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(predictions, out / "predictions.parquet")
    protocol = {
        "eval_set": str(Path(config.eval_set).resolve()),
        "database": manifest.params.get("database"),
        "queries": manifest.params.get("queries"),
        "n_database": len(manifest.database),
        "n_queries": len(manifest.queries),
        "queries_without_positives": int(sum(len(p) == 0 for p in manifest.positives)),
        "threshold_m": manifest.params.get("threshold"),
        "image_size": config.image_size or "native",
        "model": args,
        "checkpoint": str(weights_path.resolve()),
        "checkpoint_sha256": digest,
        "catalog_fingerprint": manifest.catalog_fingerprint,
        "index": config.index,
        "ivfpq": _ivfpq_protocol(config.ivfpq, len(manifest.database)) if config.index != "flat" else None,
        "device": str(device),
        "timings": timings,
    }
    report = {"recalls": results, "protocol": protocol, "warning": warning}
    if "ivfpq" in results and "flat" in results:
        report["ivfpq_recall_lost"] = {n: round(results["flat"][n] - results["ivfpq"][n], 3) for n in results["flat"]}
    (out / "recalls.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    try:
        from vgtrain.report import write_report
    except ImportError:  # pragma: no cover - the report module ships with vgtrain
        write_report = None
    if write_report is not None:
        report["report"] = str(
            write_report(
                out,
                recalls=results,
                protocol=protocol,
                predictions=predictions,
                manifest=manifest,
                num_preds_to_save=config.num_preds_to_save,
            )
        )
    return report


def _search(db: np.ndarray, q: np.ndarray, k: int, kind: str, config: EvalConfig):
    try:
        return search(db, q, k, replace(config.ivfpq, kind=kind))
    except ValueError as e:
        raise EvalError(str(e)) from None


def _ivfpq_protocol(spec: IndexSpec, n: int) -> dict[str, int]:
    """The IVF-PQ parameters used for a database of ``n`` images, automatic values resolved."""
    nlist, train = spec.resolved(n)
    return {"nlist": nlist, "m": spec.m, "nbits": spec.nbits, "nprobe": min(spec.nprobe, nlist), "train_size": train,
            "rerank": spec.rerank}  # fmt: skip


def _predictions_table(dist: np.ndarray, idx: np.ndarray, manifest):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = pq.read_table(manifest.path, columns=["role", "idx", "image_id"]).to_pydict()
    db_ids = np.zeros(len(manifest.database), dtype=np.int64)
    q_ids = np.zeros(len(manifest.queries), dtype=np.int64)
    for role, i, image_id in zip(ids["role"], ids["idx"], ids["image_id"], strict=True):
        (db_ids if role == "database" else q_ids)[i] = image_id
    nq, k = idx.shape
    positive = np.array([np.isin(idx[i], manifest.positives[i]) for i in range(nq)]).reshape(nq, k)
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
