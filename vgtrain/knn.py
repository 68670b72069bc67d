"""k-nearest-neighbour search over image descriptors: exact (flat) or approximate (IVF-PQ).

Conventions: descriptors are float32 rows, L2-normalised by the model, compared by squared
L2 distance (for unit vectors ``||q - x||^2 = 2 - 2 cos(q, x)``, so the ranking is the
cosine ranking). Distances come back as float32 squared L2, smallest first; indices as int64
rows of ``database``.

* ``flat`` is exact: every query is compared with every database row. With faiss on a
  machine where faiss sees a GPU it is a GPU ``IndexFlatL2``; on CPU it is faiss's
  brute-force kernel (``knn_L2sqr``, the one ``IndexFlatL2.search`` runs) on the caller's
  array, which avoids the copy of the database an index would hold (5.7 GB for SF-XL test).
  Without faiss it is torch matmul + topk in memory-bounded query batches.
* ``ivfpq`` is approximate (faiss ``IndexIVFPQ``): an inverted file of ``nlist`` coarse
  k-means cells, each vector stored as ``m`` bytes (``nbits`` = 8) of product-quantised
  residual; a query scans ``nprobe`` cells. It needs faiss. With ``rerank`` > 0 the top
  ``max(rerank, k)`` IVF-PQ candidates are re-scored by exact distance to the database rows
  (IVFADC+R, Jegou et al. 2011), which removes the error of the PQ codes from the ranking and
  makes the returned distances exact; it reads only the candidates' rows of ``database``.
* :func:`search_streamed` is ``flat`` over a database given shard by shard (stored descriptors):
  memory holds one shard and the queries' running top k.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

NO_FAISS_IVFPQ = "IVF-PQ needs faiss: pip install faiss-cpu (or faiss-gpu)"
_TORCH_BLOCK_BYTES = 256 << 20  # distance block of the torch fallback (queries x database float32)
_TORCH_DB_CHUNK = 262_144  # database rows per norm computation in the torch fallback


@dataclass(frozen=True)
class IndexSpec:
    """How ``search`` indexes the database.

    kind: "flat" (exact) or "ivfpq" (approximate, faiss only).
    nlist: IVF cells; 0 = auto, about 4 * sqrt(N) clamped to [16, 65536] (and to the training size).
    m: PQ sub-quantisers, bytes per stored vector when nbits = 8; must divide D.
    nbits: bits per sub-quantiser code (2**nbits centroids each).
    nprobe: IVF cells scanned per query (more: slower, closer to exact).
    train_size: database rows (a seeded random subset) the IVF-PQ is trained on;
        0 = auto, min(N, max(50 * nlist, 100_000)).
    rerank: IVF-PQ candidates per query re-scored by exact squared L2 (at least k); 0 = off.
    """

    kind: str = "flat"
    nlist: int = 0
    m: int = 64
    nbits: int = 8
    nprobe: int = 8
    train_size: int = 0
    rerank: int = 0

    def resolved(self, n: int) -> tuple[int, int]:
        """(nlist, train_size) for a database of ``n`` rows, the auto values filled in."""
        nlist = self.nlist or min(max(round(4 * math.sqrt(n)), 16), 65536)
        train = self.train_size or min(n, max(50 * nlist, 100_000))
        if not self.nlist:
            nlist = min(nlist, train)
        return nlist, min(train, n)


def _faiss():
    """faiss, or None when it is not importable.

    faiss-cpu's wheel runs OpenMP-threaded OpenBLAS next to its own OpenMP loops; with the
    default (spinning) wait policy, idle threads that spin steal the cores BLAS needs, which on
    a small or busy machine makes searches and k-means several times slower (faiss's
    troubleshooting advice: OMP_WAIT_POLICY=PASSIVE). The policy is read once, when faiss's
    OpenMP runtime loads, so it is set (unless the user set one) only around the first import
    and then removed again, leaving other libraries' runtimes alone.
    """
    if "faiss" in sys.modules:
        return sys.modules["faiss"]
    added = "OMP_WAIT_POLICY" not in os.environ
    if added:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        import faiss
    except ImportError:
        return None
    finally:
        if added:
            os.environ.pop("OMP_WAIT_POLICY", None)
    return faiss


def _num_gpus(faiss) -> int:
    return getattr(faiss, "get_num_gpus", lambda: 0)()


def _as_rows(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, D), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)  # a copy only when not already float32 C-contiguous


def search(
    database: np.ndarray,
    queries: np.ndarray,
    k: int,
    spec: IndexSpec = IndexSpec(),
    *,
    seed: int = 0,
    batch: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest database rows of every query: (distances, indices), each (Q, k).

    distances: float32 squared L2 (exact for ``flat``; for ``ivfpq``, the distance to the
    PQ-reconstructed vector), ascending. indices: int64 rows of ``database``; -1 where IVF-PQ
    found fewer than k vectors in its probed cells. k is clamped to N.
    ``batch`` > 0 searches ``batch`` queries per call instead of all at once (same results).
    ``seed`` picks the IVF-PQ training subset and seeds its k-means.
    Inputs are made float32 C-contiguous (a copy only when they are not already).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    if spec.kind not in ("flat", "ivfpq"):
        raise ValueError(f"unknown index kind {spec.kind!r} (flat, ivfpq)")
    database = _as_rows("database", database)
    queries = _as_rows("queries", queries)
    n, d = database.shape
    if queries.shape[1] != d:
        raise ValueError(f"queries have D={queries.shape[1]}, database D={d}")
    if n == 0:
        raise ValueError("empty database")
    k = min(k, n)
    if spec.kind == "ivfpq":
        _check_ivfpq(spec, n, d)
    faiss = _faiss()
    if spec.kind == "ivfpq":
        if faiss is None:
            raise ValueError(NO_FAISS_IVFPQ)
        index = train_ivfpq(database, spec, seed=seed)
        index.add(database)
        if spec.rerank <= 0:
            return _batched(index.search, queries, k, batch)
        shortlist = min(max(spec.rerank, k), n)

        def search_and_rerank(q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return rerank_exact(database, q, index.search(q, shortlist)[1], kk)

        return _batched(search_and_rerank, queries, k, batch)
    if faiss is None:
        return _torch_flat(database, queries, k, batch)
    if _num_gpus(faiss) > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, faiss.IndexFlatL2(d))
        index.add(database)
        return _batched(index.search, queries, k, batch)
    return _batched(lambda q, kk: faiss.knn(q, database, kk), queries, k, batch)


def _check_ivfpq(spec: IndexSpec, n: int, d: int) -> None:
    if spec.m < 1 or d % spec.m:
        raise ValueError(f"PQ m={spec.m} must divide D={d}")
    if not 1 <= spec.nbits <= 16:
        raise ValueError(f"nbits must be in [1, 16], got {spec.nbits}")
    if spec.nprobe < 1 or spec.nlist < 0 or spec.train_size < 0 or spec.rerank < 0:
        raise ValueError(f"nprobe must be >= 1 and nlist, train_size, rerank >= 0: {spec}")
    nlist, train = spec.resolved(n)
    if train < max(nlist, 2**spec.nbits):
        raise ValueError(
            f"IVF-PQ needs at least max(nlist, 2**nbits) = {max(nlist, 2**spec.nbits)} training vectors, has {train}"
        )


def train_ivfpq(database: np.ndarray, spec: IndexSpec, *, seed: int = 0):
    """A trained, still empty faiss ``IndexIVFPQ`` (CPU) for ``database``, its ``nprobe`` set.

    ``search`` adds the database and queries it; callers that time the steps (bench/knn.py)
    call ``index.add(database)`` and ``index.search(queries, k)`` themselves. Once filled it
    holds only the codes and ids: N * (m + 8) bytes, plus a precomputed table of
    nlist * m * 2**nbits float32 when that is under faiss's 2 GB limit.
    """
    faiss = _faiss()
    if faiss is None:
        raise ValueError(NO_FAISS_IVFPQ)
    database = _as_rows("database", database)
    n, d = database.shape
    _check_ivfpq(spec, n, d)
    nlist, train = spec.resolved(n)
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, nlist, spec.m, spec.nbits)  # keeps its quantizer alive
    index.cp.seed = seed  # coarse k-means
    index.pq.cp.seed = seed  # PQ k-means
    if train < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=train, replace=False))
        index.train(database[rows])
    else:
        index.train(database)
    index.nprobe = min(spec.nprobe, nlist)
    return index


def rerank_exact(
    database: np.ndarray, queries: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k candidates nearest each query by exact squared L2: (distances, indices), each (Q, k).

    ``candidates``: (Q, C) int64 rows of ``database``, -1 for none (those rank last, with
    distance +inf and index -1). Reads only the candidate rows: faiss's ``fvec_L2sqr_by_idx``
    when faiss is importable, else numpy in query chunks. Ties keep the candidates' order.
    """
    database = _as_rows("database", database)
    queries = _as_rows("queries", queries)
    cand = np.ascontiguousarray(candidates, dtype=np.int64)
    if cand.ndim != 2 or len(cand) != len(queries):
        raise ValueError(f"candidates must be (Q={len(queries)}, C), got shape {cand.shape}")
    missing = cand < 0
    safe = np.where(missing, 0, cand)
    dist = np.empty(cand.shape, dtype=np.float32)
    faiss = _faiss()
    if faiss is not None and cand.size:
        faiss.fvec_L2sqr_by_idx(
            faiss.swig_ptr(dist), faiss.swig_ptr(queries), faiss.swig_ptr(database), faiss.swig_ptr(safe),
            database.shape[1], len(queries), cand.shape[1],
        )  # fmt: skip
    else:
        rows = max(1, _TORCH_BLOCK_BYTES // max(1, 4 * cand.shape[1] * database.shape[1]))
        for s in range(0, len(queries), rows):
            diff = database[safe[s : s + rows]] - queries[s : s + rows, None, :]
            dist[s : s + rows] = np.einsum("qcd,qcd->qc", diff, diff)
    dist[missing] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    top_d = np.take_along_axis(dist, order, axis=1)
    top_i = np.take_along_axis(cand, order, axis=1)
    top_i[~np.isfinite(top_d)] = -1
    return top_d, top_i


def _batched(fn, queries: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    if batch <= 0 or batch >= len(queries):
        dist, idx = fn(queries, k)
        return np.asarray(dist, dtype=np.float32), np.asarray(idx, dtype=np.int64)
    dist = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), batch):
        dist[s : s + batch], idx[s : s + batch] = fn(queries[s : s + batch], k)
    return dist, idx


def _torch_flat(database: np.ndarray, queries: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN by torch matmul + topk; the (rows, N) distance block stays under ~256 MB."""
    import torch

    db = torch.from_numpy(database)  # no copy
    db_norms = torch.empty(len(db), dtype=torch.float32)
    for s in range(0, len(db), _TORCH_DB_CHUNK):
        chunk = db[s : s + _TORCH_DB_CHUNK]
        db_norms[s : s + len(chunk)] = torch.linalg.vector_norm(chunk, dim=1).square()
    rows = max(1, _TORCH_BLOCK_BYTES // (4 * len(db)))
    if batch > 0:
        rows = min(rows, batch)
    dist = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    with torch.no_grad():
        for s in range(0, len(queries), rows):
            q = torch.from_numpy(queries[s : s + rows])
            d2 = torch.addmm(db_norms[None, :], q, db.T, alpha=-2.0)
            d2 += q.square().sum(1, keepdim=True)
            d2.clamp_(min=0.0)
            top_d, top_i = torch.topk(d2, k, dim=1, largest=False, sorted=True)
            dist[s : s + len(q)] = top_d.numpy()
            idx[s : s + len(q)] = top_i.numpy()
    return dist, idx


def search_streamed(
    shards: Iterable[tuple[np.ndarray, np.ndarray]], queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (flat) kNN over a database given shard by shard: (distances, indices), each (Q, min(k, N)).

    ``shards`` yields ``(ids, rows)``: int64 ids (n,) of the shard's rows (their database index)
    and their (n, D) descriptors. Each shard is searched with :func:`search` (flat) and its top k
    merged into the running top k, ordered by (distance, id): memory holds one shard plus
    Q x 2k candidates, never the whole database. Equal to :func:`search` on the concatenated
    database except that tied distances are ordered by the smaller id.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = _as_rows("queries", queries)
    best_d = np.full((len(queries), k), np.inf, dtype=np.float32)
    best_i = np.full((len(queries), k), -1, dtype=np.int64)
    total = 0
    for ids, rows in shards:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            continue
        if len(ids) != len(rows):
            raise ValueError(f"shard has {len(ids)} ids for {len(rows)} rows")
        total += len(ids)
        dist, local = search(rows, queries, min(k, len(ids)))
        cand_d = np.concatenate([best_d, dist], axis=1)
        cand_i = np.concatenate([best_i, ids[local]], axis=1)
        order = np.lexsort((cand_i, cand_d), axis=1)[:, :k]  # by distance, then by id
        best_d = np.take_along_axis(cand_d, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    if total == 0:
        raise ValueError("empty database")
    k = min(k, total)
    return np.ascontiguousarray(best_d[:, :k]), np.ascontiguousarray(best_i[:, :k])
