"""Recall@N as CosPlace defines it (REFERENCE.md c), and the descriptors and kNN it is computed from.

The building blocks both commands share: ``vgtrain fit`` validates with :func:`evaluate` after
every epoch, ``vgtrain eval`` (:mod:`vgtrain.eval`, which also writes predictions, recalls.json
and the report) calls :func:`compute_descriptors` and :func:`recalls_from_hits`.

Recall@N: a query counts as found at N if any of its top-N predictions is a positive
(a database image within the threshold, as listed in the eval manifest); queries without
any positive stay in the denominator. Reported in percent, for N in RECALL_VALUES.
An eval set with several radii (``EvalManifest.positives_by_threshold``) gets Recall@N per radius
from the same predictions (:func:`recalls_by_threshold`): only the membership test changes.
kNN is exact L2 on L2-normalised descriptors (:func:`vgtrain.knn.search`, flat): faiss (a GPU
index when faiss sees a GPU) when it is importable, otherwise torch matmul + topk.
"""

from __future__ import annotations

import numpy as np
import torch

from vgtrain.stats import hits

RECALL_VALUES = (1, 5, 10, 20)


@torch.no_grad()
def compute_descriptors(
    model: torch.nn.Module,
    paths: list[str],
    *,
    image_size: int | None,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    sizes: list[tuple[int, int]] | None = None,
) -> np.ndarray:
    """float32 (len(paths), D) descriptors, in the order of ``paths``; ``sizes`` (w, h) spare header reads."""
    from vgtrain.augment import normalize
    from vgtrain.data import eval_loader

    model.eval()
    out: np.ndarray | None = None
    loader = eval_loader(paths, image_size=image_size, batch_size=batch_size, num_workers=num_workers, sizes=sizes)
    for images, idx in loader:
        x = normalize(images.to(device)).contiguous(memory_format=torch.channels_last)
        desc = model(x).float().cpu().numpy()
        if out is None:
            out = np.empty((len(paths), desc.shape[1]), dtype=np.float32)
        out[idx.numpy()] = desc
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def recalls(predictions: np.ndarray, positives: list[np.ndarray], values=RECALL_VALUES) -> dict[int, float]:
    """Recall@N in percent (CosPlace's definition) from (Q, k) predicted database indices."""
    return recalls_from_hits(hits(predictions, positives, values), values)


def recalls_by_threshold(
    predictions: np.ndarray, positives_by_threshold: dict[float, list[np.ndarray]], values=RECALL_VALUES
) -> dict[float, dict[int, float]]:
    """Recall@N in percent per radius (metres, ascending) from one (Q, k) array of predicted database indices;
    ``positives_by_threshold``: radius -> per query, its positives (queries without any stay in the denominator)."""
    return {float(t): recalls(predictions, pos, values) for t, pos in sorted(positives_by_threshold.items())}


def recalls_from_hits(found: np.ndarray, values=RECALL_VALUES) -> dict[int, float]:
    """Recall@N in percent from the (Q, len(values)) hit matrix of :func:`vgtrain.stats.hits`."""
    total = max(found.shape[0], 1)
    counts = found.sum(axis=0)
    return {n: float(100.0 * int(c) / total) for n, c in zip(values, counts, strict=True)}


def evaluate(model, manifest, *, image_size, batch_size, num_workers, device, values=RECALL_VALUES) -> dict[int, float]:
    """Recall@N of ``model`` on an EvalManifest."""
    common = {"image_size": image_size, "batch_size": batch_size, "num_workers": num_workers, "device": device}
    db = compute_descriptors(model, manifest.database, sizes=manifest.database_sizes, **common)
    q = compute_descriptors(model, manifest.queries, sizes=manifest.query_sizes, **common)
    from vgtrain.knn import search

    _, idx = search(db, q, max(values))
    return recalls(idx, manifest.positives, values)
