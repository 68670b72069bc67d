"""kNN for evaluation at SF-XL test size: exact flat search (batched vs one query at a time) and IVF-PQ.

    python bench/knn.py [--db 2800000] [--queries 1000] [--dim 512] [--one-at-a-time 50]
                        [--nprobe 8,16,32] [--rerank 0,64] [--m 64] [--nlist 0] [--train-size 0]
                        [--places 4000] [--spread 0.7] [--noise 0.5,1.5] [--seed 0]

1. Generates, seeded and in chunks (the database is the only full-size array: 2.8M x 512
   float32 = 5.7 GB), descriptors that behave like real ones: L2-normalised, clustered
   around ``--places`` place centres, with a decaying spectrum (variance of latent axis i
   proportional to (i+1)^-0.6, about 190 effective dimensions) seen through a fixed random
   rotation, so no descriptor axis is special. A database row is its place centre plus
   within-place variation (``--spread`` times the centre's scale), renormalised. A query is
   a database row (its source, a known id) plus appearance noise of the same spectrum, its
   scale drawn per query uniformly in ``--noise`` (lo,hi), renormalised: low-noise queries
   are easy, high-noise ones compete with the other images of their place.
2. Flat (exact, ``vgtrain.knn.search`` with the default spec): all queries in one call (median of 3), and
   one query per call (``batch=1``, the way evaluators that loop over queries search) on the
   first ``--one-at-a-time`` queries, extrapolated to queries/s; the two must return the same
   neighbours. Target: batched >= 10x the one-at-a-time rate.
3. IVF-PQ (``vgtrain.knn.train_ivfpq`` then ``index.add`` and ``index.search``, the steps
   ``search`` runs, timed apart): training and add times, then for every ``--nprobe`` and
   ``--rerank`` value (comma-separated; rerank 0 = PQ distances only, R > 0 = the top R
   candidates re-scored exactly, ``vgtrain.knn.rerank_exact``) the search rate (median of 3,
   re-ranking included) and recall@1. Targets: search >= 50x the flat batched rate, recall@1
   at most 1 point below flat.

Recall@1 here is "the top-1 neighbour is the query's source"; the loss is flat minus IVF-PQ,
in percentage points. Memory is the peak RSS (VmHWM of /proc/self/status).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vgtrain import knn  # noqa: E402
from vgtrain.knn import IndexSpec, rerank_exact, search, train_ivfpq  # noqa: E402

FLAT_TARGET = 10.0
IVFPQ_TARGET = 50.0
LOSS_TARGET = 1.0
SPECTRUM_DECAY = 0.6
CHUNK = 65_536


def proc_status(field: str) -> float:
    """A /proc/self/status memory field (VmHWM, VmRSS) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    faiss = knn._faiss()
    fa = "no faiss" if faiss is None else f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads"
    if faiss is not None:
        fa += f", {faiss.get_num_gpus()} GPUs, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'PASSIVE (vgtrain.knn)')}"
    return f"{os.cpu_count()} cores ({model}), {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB, {fa}"


def make_descriptors(
    n_db: int, n_q: int, dim: int, places: int, spread: float, noise: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(database (n_db, dim), queries (n_q, dim), source id of every query, effective dimensions)."""
    rng = np.random.default_rng(seed)
    scale = (np.arange(dim) + 1.0) ** (-SPECTRUM_DECAY / 2)
    scale /= np.sqrt((scale**2).sum())  # a latent vector z * scale has expected squared norm 1
    eff_dim = float((scale**2).sum() ** 2 / (scale**4).sum())
    rotation = np.linalg.qr(rng.standard_normal((dim, dim)))[0].astype(np.float32)
    scale = scale.astype(np.float32)
    centres = rng.standard_normal((places, dim), dtype=np.float32) * scale
    place = rng.integers(places, size=n_db)

    database = np.empty((n_db, dim), dtype=np.float32)
    for s in range(0, n_db, CHUNK):
        p = place[s : s + CHUNK]
        z = rng.standard_normal((len(p), dim), dtype=np.float32)
        z *= scale * np.float32(spread)
        z += centres[p]
        np.matmul(z, rotation, out=database[s : s + len(p)])
        rows = database[s : s + len(p)]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)

    source = rng.choice(n_db, size=n_q, replace=False)
    level = rng.uniform(noise[0], noise[1], size=(n_q, 1)).astype(np.float32)
    queries = database[source] + (level * rng.standard_normal((n_q, dim), dtype=np.float32) * scale) @ rotation
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return database, np.ascontiguousarray(queries, dtype=np.float32), source, eff_dim


def recall1(indices: np.ndarray, source: np.ndarray) -> float:
    return float(100.0 * np.mean(indices[:, 0] == source))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=int, default=2_800_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--one-at-a-time", type=int, default=50)
    ap.add_argument(
        "--nprobe", default="8,16,32", help="IVF cells scanned per query; comma-separated values are all measured"
    )
    ap.add_argument("--rerank", default="0,64", help="candidates re-scored exactly (0 = off); comma-separated")
    ap.add_argument("--m", type=int, default=64, help="PQ sub-quantisers (bytes per vector)")
    ap.add_argument("--nlist", type=int, default=0, help="IVF cells; 0 = IndexSpec's auto (about 4 sqrt(N))")
    ap.add_argument("--train-size", type=int, default=0, help="IVF-PQ training vectors; 0 = IndexSpec's auto")
    ap.add_argument("--places", type=int, default=4000)
    ap.add_argument("--spread", type=float, default=0.7, help="within-place variation, relative to a centre")
    ap.add_argument("--noise", default="0.5,1.5", help="lo,hi of the per-query noise scale")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    nprobes = [int(v) for v in args.nprobe.split(",")]
    reranks = [int(v) for v in args.rerank.split(",")]
    noise = tuple(float(v) for v in args.noise.split(","))
    if len(noise) != 2:
        ap.error("--noise takes lo,hi")

    print(f"machine: {machine()}; load average {load()}")
    t = time.perf_counter()
    db, q, source, eff_dim = make_descriptors(
        args.db, args.queries, args.dim, args.places, args.spread, noise, args.seed
    )
    print(
        f"data: {args.db:,} x {args.dim} database ({db.nbytes / 2**30:.2f} GiB), {args.queries:,} queries, "
        f"{args.places:,} places, spread {args.spread}, query noise {noise[0]}-{noise[1]}, "
        f"{eff_dim:.0f} effective dims; generated in {time.perf_counter() - t:.1f} s; "
        f"peak RSS {proc_status('VmHWM'):.2f} GiB"
    )

    # flat, all queries in one call (median of 3)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        flat_d, flat_i = search(db, q, args.k)
        times.append(time.perf_counter() - t)
    flat_s = statistics.median(times)
    flat_qps = args.queries / flat_s
    flat_r1 = recall1(flat_i, source)
    print(
        f"flat batched: {args.queries:,} queries in {flat_s:.2f} s (median of 3) = {flat_qps:.1f} queries/s; "
        f"recall@1 (top-1 is source) {flat_r1:.2f}%; mean top-1 / top-2 squared L2 "
        f"{flat_d[:, 0].mean():.3f} / {flat_d[:, 1].mean():.3f}"
    )

    # flat, one query per call
    n1 = min(args.one_at_a_time, args.queries)
    t = time.perf_counter()
    one_d, one_i = search(db, q[:n1], args.k, batch=1)
    one_s = time.perf_counter() - t
    one_qps = n1 / one_s
    same = bool(np.array_equal(one_i, flat_i[:n1]))
    ratio = flat_qps / one_qps
    print(
        f"flat one at a time: {n1} queries in {one_s:.2f} s = {one_qps:.2f} queries/s "
        f"(extrapolated: {args.queries / one_qps:.0f} s for {args.queries:,}); same neighbours as batched: {same}"
    )
    print(f"flat batched / one at a time: {ratio:.1f}x (target >= {FLAT_TARGET:.0f}x): {verdict(ratio >= FLAT_TARGET)}")

    # IVF-PQ
    spec = IndexSpec(kind="ivfpq", nlist=args.nlist, m=args.m, nprobe=nprobes[0], train_size=args.train_size)
    nlist, train = spec.resolved(args.db)
    t = time.perf_counter()
    index = train_ivfpq(db, spec, seed=args.seed)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    index.add(db)
    add_s = time.perf_counter() - t
    print(
        f"IVF-PQ nlist {nlist}, m {args.m}, nbits {spec.nbits} ({args.m} B codes + 8 B ids per vector = "
        f"{args.db * (args.m + 8) / 2**30:.2f} GiB): train on {train:,} vectors {train_s:.1f} s, "
        f"add {args.db:,} vectors {add_s:.1f} s; peak RSS {proc_status('VmHWM'):.2f} GiB"
    )
    passed = []
    for nprobe in nprobes:
        index.nprobe = min(nprobe, nlist)
        for rerank in reranks:
            shortlist = max(rerank, args.k)
            times = []
            for _ in range(3):
                t = time.perf_counter()
                if rerank > 0:
                    _, ivf_i = rerank_exact(db, q, index.search(q, shortlist)[1], args.k)
                else:
                    _, ivf_i = index.search(q, args.k)
                times.append(time.perf_counter() - t)
            ivf_s = statistics.median(times)
            ivf_qps = args.queries / ivf_s
            r1 = recall1(ivf_i, source)
            loss = flat_r1 - r1
            speedup = ivf_qps / flat_qps
            agree = float(100.0 * np.mean(ivf_i[:, 0] == flat_i[:, 0]))
            ok = speedup >= IVFPQ_TARGET and loss <= LOSS_TARGET
            if ok:
                passed.append((nprobe, rerank))
            print(
                f"IVF-PQ nprobe {index.nprobe}, rerank {rerank or 'off'}: search {ivf_s:.3f} s = "
                f"{ivf_qps:,.0f} queries/s, {speedup:.1f}x flat batched (target >= {IVFPQ_TARGET:.0f}x): "
                f"{verdict(speedup >= IVFPQ_TARGET)}; recall@1 {r1:.2f}% vs flat {flat_r1:.2f}%, loss {loss:.2f} "
                f"points (target <= {LOSS_TARGET:.0f}): {verdict(loss <= LOSS_TARGET)}; top-1 same as flat {agree:.1f}%"
            )
    print(f"IVF-PQ settings meeting both targets (nprobe, rerank): {passed or 'none'}")
    print(f"peak RSS (VmHWM): {proc_status('VmHWM'):.2f} GiB; load average {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
