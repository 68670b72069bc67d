"""Eval-set positives: the SQL grid-bucket join vs scikit-learn's radius search, in one run.

    python bench/positives.py [--db 2800000] [--queries 1000] [--repeats 3] [--threshold 25] [--out bench/out]

1. Generates an SF-XL-test-sized catalog (cached under ``--out``): ``--db`` database crops,
   12 per panorama, panoramas along a street grid over a 12 x 12 km area of UTM zone 10S
   (80 m between parallel streets, a few metres of GPS jitter), and ``--queries`` query
   photos, most near a street and some anywhere (no positive). Seeded; written straight
   into images Parquet parts and registered with ``vgdata.build.register_collection``.
2. Runs, each in a fresh process so its peak RSS is its own (``os.wait4``), one untimed
   warm-up then the median of ``--repeats``:
   * ``pairs``: ``vgdata.evalset.positive_pairs``, the grid join of
     ``vgdata/sql/core/positives.sql`` that ``eval_set`` runs (from the catalog's Parquet to
     an Arrow table of pairs);
   * ``table``: ``vgdata.evalset.eval_table``, the whole manifest table ``eval_set`` writes
     (numbering 2.8M database rows by path, positives as idx lists);
   * ``sklearn``: CosPlace's reference (REFERENCE.md section c), on the database coordinates
     already in memory: ``NearestNeighbors(n_jobs=-1).fit(db).radius_neighbors(queries,
     radius, return_distance=False)``, timed with the fit (the reference fits every time)
     and without it.
3. Checks that every query's positive set is the same in all three; prints the times, the
   peak RSS of each process and the ratio sklearn (with fit) / pairs against the target >= 3x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 3.0
AREA_M = 12_000.0
STREET_GAP_M = 80.0
ORIGIN = (544_000.0, 4_172_000.0)  # south-west corner in zone 10S, inside San Francisco


def generate(cat: Path, n_db: int, n_queries: int, seed: int) -> None:
    """Write the database and queries_v1 collections of a generated catalog (once)."""
    import duckdb
    import pyarrow as pa

    from vgdata.build import register_collection
    from vgdata.catalog import atomic_write_table
    from vgdata.schema import IMAGES

    if (cat / "build.json").is_file():
        return
    con = duckdb.connect()
    con.execute("select setseed($s)", {"s": (seed % 1000) / 1000})
    e0, n0 = ORIGIN
    streets = int(AREA_M / STREET_GAP_M)
    con.execute(
        """
        create temp table panos as
        select
            range as pano,
            random() < 0.5 as along_east,
            random() * $area as along,
            floor(random() * $streets) * $gap as street,
            (random() - 0.5) * 6 as jitter,
            2009 + floor(random() * 9)::int as year
        from range($n)
        """,
        {"n": (n_db + 11) // 12, "area": AREA_M, "streets": streets, "gap": STREET_GAP_M},
    )
    database = con.sql(
        """
        with positions as (
            select
                pano,
                year,
                round($e0 + case when along_east then along else street + jitter end, 2) as utm_east,
                round($n0 + case when along_east then street + jitter else along end, 2) as utm_north
            from panos
        ),
        crops as (
            select positions.*, tile.range as tile, (tile.range * 30 + random() * 0.4) as heading
            from positions cross join range(12) as tile
        )
        select
            pano * 12 + tile + 1 as image_id,
            printf('%.2f/@%010.2f@%010.2f@10@S@@@@%d@@@@%d06@@.jpg',
                   37.7 + utm_north / 1e7, utm_east, utm_north, floor(heading)::int, year) as path,
            'pano' || pano as pano_id,
            tile,
            utm_east,
            utm_north,
            heading,
            year,
            512 as width,
            512 as height_px
        from crops
        order by pano, tile
        limit $limit
        """,
        params={"e0": e0, "n0": n0, "limit": n_db},
    ).to_arrow_table()
    # queries: 85% within ~10 m of a street position, the rest anywhere (most of those have no positive)
    queries = con.sql(
        """
        with q as (
            select range as i, random() < 0.85 as on_street, random() < 0.5 as along_east,
                   random() * $area as along, floor(random() * $streets) * $gap as street,
                   (random() - 0.5) * 20 as off_e, (random() - 0.5) * 20 as off_n,
                   random() * $area as free_e, random() * $area as free_n
            from range($n)
        )
        select
            1000000000000 + i as image_id,
            printf('@%010.2f@%010.2f@10@S@@@@@@@@@@@@q%05d.jpg', utm_east, utm_north, i) as path,
            utm_east,
            utm_north,
            2019::smallint as year,
            640 as width,
            480 as height_px
        from (
            select i,
                round($e0 + case when not on_street then free_e
                    when along_east then along + off_e else street + off_e end, 2) as utm_east,
                round($n0 + case when not on_street then free_n
                    when along_east then street + off_n else along + off_n end, 2) as utm_north
            from q
        )
        """,
        params={"n": n_queries, "area": AREA_M, "streets": streets, "gap": STREET_GAP_M, "e0": e0, "n0": n0},
    ).to_arrow_table()
    con.close()

    def to_images(t: pa.Table, collection: str) -> pa.Table:
        n = t.num_rows
        fixed = {"collection": pa.array([collection] * n), "utm_zone": pa.array([10] * n), "utm_letter": ["S"] * n}
        arrays = []
        for f in IMAGES:
            if f.name in t.column_names:
                arrays.append(t[f.name].cast(f.type))
            elif f.name in fixed:
                arrays.append(pa.array(fixed[f.name], type=f.type))
            else:
                arrays.append(pa.nulls(n, type=f.type))
        return pa.Table.from_arrays(arrays, schema=IMAGES)

    part_rows = 1 << 20
    for k, start in enumerate(range(0, database.num_rows, part_rows)):
        part = to_images(database.slice(start, part_rows), "database")
        atomic_write_table(cat / "images" / f"database-{k:06d}.parquet", part)
    atomic_write_table(cat / "images" / "queries_v1-000000.parquet", to_images(queries, "queries_v1"))
    register_collection(cat, "database", image_root="crops/database", source={"generated": "bench/positives.py"})
    register_collection(cat, "queries_v1", image_root="crops/queries_v1", source={"generated": "bench/positives.py"})


# ---------- workers (each in its own process)


def _timed(fn, repeats: int) -> tuple[list[float], object]:
    fn()  # warm-up: file cache, first connection
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def worker(mode: str, cat: Path, work: Path, repeats: int, threshold: float) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vgdata.evalset import eval_table, positive_pairs

    sets = {"database": "database", "queries": "queries_v1", "threshold": threshold}
    if mode == "pairs":
        times, pairs = _timed(lambda: positive_pairs(cat, **sets), repeats)
        pq.write_table(pairs, work / "pairs.parquet")
        return {"times": times, "pairs": pairs.num_rows}
    if mode == "table":
        times, table = _timed(lambda: eval_table(cat, **sets), repeats)
        pq.write_table(table, work / "eval_table.parquet")
        return {"times": times, "rows": table.num_rows}
    if mode == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        t = pq.read_table(work / "eval_table.parquet", columns=["role", "utm_east", "utm_north"])
        is_db = np.asarray(t["role"].to_numpy(zero_copy_only=False) == "database")
        xy = np.column_stack([t["utm_east"].to_numpy(), t["utm_north"].to_numpy()])
        db, queries = np.ascontiguousarray(xy[is_db]), np.ascontiguousarray(xy[~is_db])

        def with_fit():
            return (
                NearestNeighbors(n_jobs=-1).fit(db).radius_neighbors(queries, radius=threshold, return_distance=False)
            )

        times, found = _timed(with_fit, repeats)
        fit_times, query_times = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            nn = NearestNeighbors(n_jobs=-1).fit(db)
            t1 = time.perf_counter()
            nn.radius_neighbors(queries, radius=threshold, return_distance=False)
            t2 = time.perf_counter()
            fit_times.append(t1 - t0)
            query_times.append(t2 - t1)
        lists = pa.array([sorted(int(i) for i in f) for f in found], type=pa.list_(pa.int32()))
        pq.write_table(pa.table({"positives": lists}), work / "sklearn.parquet")
        return {"times": times, "fit_times": fit_times, "query_times": query_times}
    raise ValueError(mode)


def run_worker(mode: str, args, cat: Path, work: Path) -> dict:
    """Run one worker in a fresh interpreter; its result plus its own peak RSS (MiB)."""
    cmd = [sys.executable, __file__, "--worker", mode, "--cat", str(cat), "--work", str(work)]
    cmd += ["--repeats", str(args.repeats), "--threshold", str(args.threshold)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"worker {mode} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return result


def compare(work: Path) -> tuple[int, int, dict]:
    """Mismatching queries: sklearn vs the eval table, and the pairs vs the eval table."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(work / "eval_table.parquet", columns=["role", "idx", "image_id", "positives"])
    db = table.filter(pc.equal(table["role"], "database"))
    qs = table.filter(pc.equal(table["role"], "query"))
    ours = qs["positives"].to_pylist()
    theirs = pq.read_table(work / "sklearn.parquet")["positives"].to_pylist()
    sk_mismatch = sum(sorted(a) != sorted(b) for a, b in zip(ours, theirs, strict=True))

    db_idx = dict(zip(db["image_id"].to_pylist(), db["idx"].to_pylist(), strict=True))
    q_pos = {q: i for i, q in enumerate(qs["image_id"].to_pylist())}
    from_pairs: list[list[int]] = [[] for _ in ours]
    pairs = pq.read_table(work / "pairs.parquet")
    for q, d in zip(pairs["query_image_id"].to_pylist(), pairs["database_image_id"].to_pylist(), strict=True):
        from_pairs[q_pos[q]].append(db_idx[d])
    pair_mismatch = sum(sorted(a) != b for a, b in zip(from_pairs, ours, strict=True))
    counts = [len(p) for p in ours]
    stats = {
        "queries": len(ours),
        "database": db.num_rows,
        "pairs": sum(counts),
        "queries_without_positives": sum(c == 0 for c in counts),
        "mean_positives": sum(counts) / len(counts),
    }
    return sk_mismatch, pair_mismatch, stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=int, default=2_800_000, help="database images (SF-XL test: 2,805,815)")
    p.add_argument("--queries", type=int, default=1000, help="query images (SF-XL test v1: 1000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per side (median), after one warm-up")
    p.add_argument("--threshold", type=float, default=25.0, help="positive radius in metres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where the catalog is cached")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--cat", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.cat, args.work, args.repeats, args.threshold)))
        return 0

    cat = args.out / f"positives-{args.db}-{args.queries}-s{args.seed}"
    work = cat / "_bench"
    t0 = time.perf_counter()
    generate(cat, args.db, args.queries, args.seed)
    print(f"catalog {cat} ready in {time.perf_counter() - t0:.1f} s")
    work.mkdir(parents=True, exist_ok=True)

    pairs = run_worker("pairs", args, cat, work)
    table = run_worker("table", args, cat, work)
    sk = run_worker("sklearn", args, cat, work)
    sk_mismatch, pair_mismatch, stats = compare(work)

    med = statistics.median
    sql_s, table_s = med(pairs["times"]), med(table["times"])
    sk_s, fit_s, query_s = med(sk["times"]), med(sk["fit_times"]), med(sk["query_times"])
    print(
        f"{stats['database']:,} database images, {stats['queries']:,} queries, threshold {args.threshold:g} m: "
        f"{stats['pairs']:,} positive pairs, {stats['mean_positives']:.1f} per query, "
        f"{stats['queries_without_positives']} queries without positives"
    )
    print(f"medians of {args.repeats} after one warm-up (cpu count {os.cpu_count()}):")
    rows = [
        ("SQL grid join, positive_pairs", sql_s, pairs["peak_rss_mib"]),
        ("SQL eval_table (whole manifest table)", table_s, table["peak_rss_mib"]),
        ("sklearn fit + radius_neighbors", sk_s, sk["peak_rss_mib"]),
        ("sklearn fit only", fit_s, None),
        ("sklearn radius_neighbors only (fitted)", query_s, None),
    ]
    for label, s, rss in rows:
        mem = f"  peak RSS {rss:,.0f} MiB (its process)" if rss is not None else ""
        print(f"  {label:<40} {s:8.3f} s{mem}")
    print(f"mismatching queries: sklearn vs eval table {sk_mismatch}, pairs vs eval table {pair_mismatch}")
    ratio = sk_s / sql_s
    verdict = "PASS" if ratio >= TARGET and sk_mismatch == 0 and pair_mismatch == 0 else "FAIL"
    print(f"speed ratio sklearn (with fit) / SQL grid join: {ratio:.2f}x (target >= {TARGET:g}x): {verdict}")
    print(f"  sklearn (with fit) / SQL eval_table: {sk_s / table_s:.2f}x")
    print(f"  sklearn (without fit) / SQL grid join: {query_s / sql_s:.2f}x")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
