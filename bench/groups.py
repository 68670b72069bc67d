"""split-groups (SQL over Parquet) vs CosPlace's Python procedure, in one run.

    python bench/groups.py [--n 5000000] [--no-reference] [--out bench/out]

1. Generates ``--n`` SF-XL-like crop rows (panoramas along a street grid, 12 headings each,
   SF-XL '@' names with integer headings) straight into a catalog's images Parquet and a
   ``paths.txt`` (no image files), with DuckDB.
2. Runs, each in a fresh process that reports its own peak RSS (VmHWM):
   * ours: ``vgdata.groups.split_groups`` with CosPlace's defaults (summary + manifest);
   * the reference, CosPlace's procedure (REFERENCE.md b.2-b.3): read the path list, sort it,
     split each name on '@', float64 fields 1, 2, 9, a dict of lists per class, the kept
     classes, the groups in first-appearance order, the cache saved once and loaded back by
     each of the 8 group datasets with torch.save/torch.load as CosPlace does (torch 2.13's
     weights_only unpickler), or plain pickle when torch is not installed (a faster reference).
3. Checks both chose the same images for the first 8 groups; prints wall times, peak memory
   and the ratios against the targets (>= 40x faster, <= 1/4 of the memory at 5M; at 41.2M:
   <= 20 s and <= 2 GB for ours, where the reference would need ~60 GB and is skipped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def generate(cat: Path, n: int, seed: int = 0) -> None:
    """Write n crop rows as images/database-*.parquet plus paths.txt, and register them."""
    import duckdb

    from vgdata.build import register_collection

    if (cat / "build.json").is_file():
        return
    (cat / "images").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"select setseed({seed / 1e6})")
    panos = (n + 11) // 12
    street_gap = 80.0  # metres between parallel streets; ~0.75 m between panoramas (years overlap)
    side = max(200.0, (panos * 0.75 * street_gap / 2) ** 0.5)
    con.execute(
        f"""
        create temp table panos as
        with p as (
            select range as pano, random() as u, random() as v, random() as w, random() as yr,
                   floor(random() * {int(side / street_gap)}) as street
            from range({panos})
        )
        select
            pano,
            round(543000 + case when w < 0.5 then u * {side} else street * {street_gap} + (v - 0.5) * 6 end, 2) as e,
            round(4170000 + case when w < 0.5 then street * {street_gap} + (v - 0.5) * 6 else u * {side} end, 2) as n,
            2009 + floor(yr * 13)::int as year
        from p
        """
    )
    con.execute(
        f"""
        copy (
            select
                (pano * 12 + k)::bigint as image_id,
                '37.7' || (pano % 10)::varchar || '/@' || printf('%010.2f', e) || '@' || printf('%010.2f', n)
                    || '@10@S@037.70000@-122.40000@p' || printf('%08d', pano) || '@@' || (30 * k)::varchar
                    || '@@@@' || year::varchar || '06@@.jpg' as path,
                'database' as collection,
                e as utm_east, n as utm_north, 10::smallint as utm_zone, 'S' as utm_letter,
                (30 * k)::double as heading, 37.7 as lat, -122.4 as lon,
                year::smallint as year, 6::tinyint as month, 512 as width, 512 as height_px
            from panos, range(12) as t(k)
            where pano * 12 + k < {n}
        ) to '{cat}/images/database-000000.parquet' (format parquet, compression zstd, row_group_size 1000000)
        """
    )
    con.execute(
        f"copy (select path from '{cat}/images/database-000000.parquet') to '{cat}/paths.txt' (header false, quote '')"
    )
    con.close()
    register_collection(cat, "database", image_root="crops/database", source={"generated": n, "seed": seed})


def peak_gib() -> float:
    """This process's peak resident memory (VmHWM), GiB; exec starts it afresh, fork does not."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_ours(cat: Path, result: Path) -> None:
    from vgdata.groups import GroupsConfig, split_groups

    t = time.perf_counter()
    r = split_groups(GroupsConfig(cat))
    seconds = time.perf_counter() - t
    peak = peak_gib()
    result.write_text(
        json.dumps({"seconds": seconds, "peak_gib": peak, "manifest": r.manifest, "images": r.manifest_images})
    )


def run_reference(cat: Path, result: Path, M=10, alpha=30, N=5, L=2, mipc=10, groups_num=8) -> None:
    t = time.perf_counter()
    with open(cat / "paths.txt") as f:
        paths = sorted(line.rstrip("\n") for line in f)
    import numpy as np

    fields = np.array([(p.split("@")[1], p.split("@")[2], p.split("@")[9]) for p in paths]).astype(np.float64)
    images_per_class: dict[tuple, list[str]] = {}
    classes_of = []
    for path, (e, n, h) in zip(paths, fields, strict=True):
        class_id = (int(e // M * M), int(n // M * M), int(h // alpha * alpha))
        classes_of.append(class_id)
        images_per_class.setdefault(class_id, []).append(path)
    images_per_class = {c: p for c, p in images_per_class.items() if len(p) >= mipc}
    groups: dict[tuple, set] = {}
    for class_id in classes_of:
        if class_id in images_per_class:
            g = (class_id[0] % (M * N) // M, class_id[1] % (M * N) // M, class_id[2] % (alpha * L) // alpha)
            groups.setdefault(g, set()).add(class_id)
    classes_per_group = [list(s) for s in groups.values()]
    # CosPlace caches (classes_per_group, images_per_class) with torch.save, then each of the
    # groups_num TrainDatasets torch.loads the whole file and keeps it (REFERENCE.md b.3).
    # With torch installed (the training extra) this is exactly CosPlace's torch.save/torch.load
    # (torch 2.13 defaults to the weights_only unpickler); without it plain pickle stands in,
    # which is a faster reference than CosPlace itself.
    try:
        import torch

        cache_kind = "torch.save/torch.load"
    except ImportError:
        torch, cache_kind = None, "pickle"
    cache = cat / "cosplace_cache.torch"
    with cache.open("wb") as f:
        if torch is not None:
            torch.save((classes_per_group, images_per_class), f)
        else:
            pickle.dump((classes_per_group, images_per_class), f, protocol=pickle.HIGHEST_PROTOCOL)
    datasets = []
    for _ in range(groups_num):
        with cache.open("rb") as f:
            datasets.append(torch.load(f) if torch is not None else pickle.load(f))
    seconds = time.perf_counter() - t
    peak = peak_gib()
    cache.unlink()
    chosen = sorted(p for g in classes_per_group[:groups_num] for c in g for p in images_per_class[c])
    digest = hashlib.sha256("\n".join(chosen).encode()).hexdigest()
    out = {"seconds": seconds, "peak_gib": peak, "images": len(chosen), "digest": digest, "cache": cache_kind}
    result.write_text(json.dumps(out))


def measure(role: str, cat: Path) -> dict:
    """Run one side in a fresh process; return its result, with its own peak RSS (GiB)."""
    out = cat / f"result_{role}.json"
    proc = subprocess.run([sys.executable, __file__, "--_run", role, "--out", str(cat.parent), "--catalog", str(cat)])
    if proc.returncode != 0:
        raise SystemExit(f"{role} failed with status {proc.returncode}")
    return json.loads(out.read_text())


def manifest_digest(manifest: str) -> str:
    import duckdb

    paths = [r[0] for r in duckdb.sql(f"select path from '{manifest}' order by path").fetchall()]
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5_000_000)
    ap.add_argument("--no-reference", action="store_true", help="skip CosPlace's procedure (automatic above 10M)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_run", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._run:
        (run_ours if args._run == "ours" else run_reference)(args.catalog, args.catalog / f"result_{args._run}.json")
        return

    cat = args.out / f"groups-{args.n}"
    t = time.perf_counter()
    generate(cat, args.n)
    print(f"{args.n:,} SF-XL-like rows in {cat} (generated/registered in {time.perf_counter() - t:.1f} s)")
    for m in cat.glob("manifests/*.parquet"):
        m.unlink()  # time a fresh manifest, not a reuse
    ours = measure("ours", cat)
    print(
        f"  split-groups (SQL)   {ours['seconds']:7.2f} s   peak {ours['peak_gib']:.2f} GiB   {ours['images']:,} images in 8 groups"
    )
    if args.no_reference or args.n > 10_000_000:
        ok_t, ok_m = ours["seconds"] <= 20, ours["peak_gib"] <= 2
        print(f"  targets at 41.2M: <= 20 s {'PASS' if ok_t else 'FAIL'}, <= 2 GB {'PASS' if ok_m else 'FAIL'}")
        return
    ref = measure("reference", cat)
    same = ref["digest"] == manifest_digest(ours["manifest"]) and ref["images"] == ours["images"]
    speed, mem = ref["seconds"] / ours["seconds"], ours["peak_gib"] / ref["peak_gib"]
    print(
        f"  CosPlace procedure   {ref['seconds']:7.2f} s   peak {ref['peak_gib']:.2f} GiB   {ref['images']:,} images in 8 groups"
        f" (cache: {ref['cache']})"
    )
    print(f"  same images chosen: {same}")
    print(f"  speed-up {speed:6.1f}x   (target >= 40x: {'PASS' if speed >= 40 else 'FAIL'})")
    print(f"  memory   {mem:6.3f} of the reference   (target <= 0.25: {'PASS' if mem <= 0.25 else 'FAIL'})")


if __name__ == "__main__":
    main()
