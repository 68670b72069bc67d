"""Crop-job throughput against the raw Pillow limit, and UTM rates, in one run.

    python bench/crop.py [--n 128] [--shard-size 32] [--repeats 5] [--utm-n 2000000]

Prints, with medians over ``--repeats``:
  * raw limit: decode + 12 strip crops + JPEG q95 encode of the same files, Pillow
    only, no catalog work (panoramas/s, one process), once in memory and once also
    saving the crops as plain files (the job must write them; on this VM writing
    768 files costs 12-15% of the work);
  * the build-catalog job with 1 worker and with 2 workers (panoramas/s, and per
    worker), its ratio to the raw limit (target >= 0.90 with one worker, against the raw limit that writes files) and the
    2-worker speed-up;
  * UTM: vgdata.geo vs ``utm.from_latlon`` on one zone (target >= 3x) and the
    worldwide per-point-zone rate (target >= 3 M points/s), from bench/utm_rates.py.
Panoramas are generated once at SF-XL's full 3328x1664 under bench/out/. One untimed
warm-up build runs first, so one-off import costs (~0.5 s) are not counted as throughput.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' panorama generator

from raw_panoramas import make_raw_panoramas  # noqa: E402

from vgdata.build import BuildConfig, build_catalog  # noqa: E402
from vgdata.panorama import strip_windows  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def raw_limit(files: list[Path], headings: list[float], quality: int = 95, out_dir: Path | None = None) -> float:
    """Seconds to decode, slice (12 windows, with wrap) and encode every file; nothing else.

    With ``out_dir`` each crop is also saved there as a plain file (no temporary name, no
    rename, no names, no tables): the I/O any cropper must pay.
    """
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
    os.sync()  # no write-back of an earlier step's files during this one
    start = time.perf_counter()
    for f, h in zip(files, headings, strict=True):
        with Image.open(f) as im:
            im.load()
            w, hh = im.size
            for win in strip_windows(w, hh, h):
                right = win.x0 + win.size
                crop = im.crop((win.x0, win.y0, min(right, w), win.y0 + win.size))
                if right > w:
                    full = Image.new(im.mode, (win.size, win.size))
                    full.paste(crop, (0, 0))
                    full.paste(im.crop((0, win.y0, right - w, win.y0 + win.size)), (w - win.x0, 0))
                    crop = full
                dst = io.BytesIO() if out_dir is None else out_dir / f"{f.stem}_{win.target:g}.jpg"
                crop.save(dst, format="JPEG", quality=quality)
    return time.perf_counter() - start


def job_seconds(pano_dir: Path, csv_path: Path, workers: int, shard_size: int = 32) -> float:
    tmp = Path(tempfile.mkdtemp(dir=OUT))
    try:
        os.sync()
        start = time.perf_counter()
        build_catalog(
            BuildConfig(tmp / "cat", panoramas=pano_dir, metadata=csv_path, workers=workers, shard_size=shard_size)
        )
        return time.perf_counter() - start
    finally:
        shutil.rmtree(tmp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="panoramas (3328x1664)")
    ap.add_argument("--shard-size", type=int, default=32, help="panoramas per shard of the job")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--utm-n", type=int, nargs="+", default=[2_000_000, 10_000_000], help="point counts for UTM")
    args = ap.parse_args()

    raw = OUT / f"raw-{args.n}"
    if not (raw / "panoramas.csv").is_file():
        print(f"generating {args.n} panoramas at 3328x1664 under {raw} ...", flush=True)
        make_raw_panoramas(raw, n=args.n, width=3328, seed=7)
    pano_dir, csv_path = raw / "panoramas", raw / "panoramas.csv"
    import csv

    rows = list(csv.DictReader(csv_path.open()))
    files = [pano_dir / f"{r['pano_id']}.jpg" for r in rows]
    headings = [float(r["heading"]) for r in rows]

    # Warm-up (untimed): imports of polars/duckdb/pyarrow and the page cache, once per process.
    job_seconds(pano_dir, csv_path, 1)
    raw_limit(files[:4], headings[:4])
    raw_t, rawio_t, one_t, two_t = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all alike
        raw_t.append(raw_limit(files, headings))
        rawio_t.append(raw_limit(files, headings, out_dir=OUT / "raw-crops"))
        one_t.append(job_seconds(pano_dir, csv_path, 1, args.shard_size))
        two_t.append(job_seconds(pano_dir, csv_path, 2, args.shard_size))
    n = len(files)
    shutil.rmtree(OUT / "raw-crops", ignore_errors=True)
    raw_rate = n / statistics.median(raw_t)
    rawio_rate = n / statistics.median(rawio_t)
    one_rate = n / statistics.median(one_t)
    two_rate = n / statistics.median(two_t)
    ratio = one_rate / rawio_rate
    print(f"\ncrop job, {n} panoramas 3328x1664 -> 12 crops 512x512 JPEG q95, median of {args.repeats}")
    print(f"  raw limit, in memory (decode+slice+encode)         {raw_rate:7.2f} panoramas/s")
    print(f"  raw limit, writing the crop files (plain save)     {rawio_rate:7.2f} panoramas/s")
    print(f"  build-catalog, 1 worker                            {one_rate:7.2f} panoramas/s per worker")
    print(
        f"  build-catalog, 2 workers                           {two_rate:7.2f} panoramas/s ({two_rate / 2:.2f} per worker)"
    )
    print(
        f"  1 worker / raw limit writing files  {ratio:5.2f}  (target >= 0.90: {'PASS' if ratio >= 0.90 else 'FAIL'})"
    )
    print(f"  1 worker / raw limit in memory      {one_rate / raw_rate:5.2f}  (the gap is the file system)")
    print(f"  2 workers / 1 worker  {two_rate / one_rate:5.2f}x speed-up")

    import utm_rates

    for n_points in args.utm_n:
        print()
        print(utm_rates.report(utm_rates.measure(n_points)))


if __name__ == "__main__":
    main()
