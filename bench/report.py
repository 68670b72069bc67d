"""``vgdata report`` on metadata-only SF-XL-like catalogs: wall time and peak memory, with baselines.

    python bench/report.py [--n 41200000] [--small 1000000] [--out bench/out]

For each size (``--n`` and ``--small``; ``--small 0`` skips it) the catalog ``<out>/groups-<n>``
is generated and registered by ``bench/groups.py``'s :func:`generate` (SF-XL-like crop rows
straight into images Parquet, no image files; reused when it exists), then three runs, each in
a fresh process that reports its own peak resident memory (VmHWM):

* ``count by year``: ``select year, count(*) from images group by year`` through the catalog's
  views (the cheapest aggregate: one scan of one column);
* ``vgdata info``: :func:`vgdata.info.catalog_info`;
* ``vgdata report``: :func:`vgdata.report.catalog_report` with its defaults (no groups manifest
  in a fresh catalog: split-groups' default parameters), written to ``<out>/report-<n>.html``;
  its per-section timings are printed too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RUNS = ("count by year", "vgdata info", "vgdata report")


def peak_gib() -> float:
    """This process's peak resident memory (VmHWM), GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


def run_one(role: str, cat: Path, out: Path) -> dict:
    """One timed run in this (fresh) process."""
    t = time.perf_counter()
    extra: dict = {}
    if role == "count by year":
        from vgdata.catalog import Catalog

        con = Catalog(cat).connect()
        extra["years"] = len(con.sql("select year, count(*) from images group by year").fetchall())
        con.close()
    elif role == "vgdata info":
        from vgdata.info import catalog_info

        catalog_info(cat)
    else:
        from vgdata.report import ReportConfig, catalog_report

        r = catalog_report(ReportConfig(cat, out=out))
        extra = {"timings": r.timings, "bytes": out.stat().st_size}
    return {"seconds": time.perf_counter() - t, "peak_gib": peak_gib(), **extra}


def measure(role: str, cat: Path, out: Path) -> dict:
    """Run ``role`` in a fresh process and return its result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--_run", role, "--catalog", str(cat), "--report", str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{role} failed with status {proc.returncode}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(n: int, out_dir: Path) -> None:
    from groups import generate  # bench/groups.py: the SF-XL-like row generator and its registration

    cat = out_dir / f"groups-{n}"
    t = time.perf_counter()
    generate(cat, n)
    (cat / "paths.txt").unlink(missing_ok=True)  # bench/groups.py's reference input; not needed here
    print(f"{n:,} SF-XL-like rows in {cat} (ready in {time.perf_counter() - t:.1f} s)")
    report = out_dir / f"report-{n}.html"
    for role in RUNS:
        r = measure(role, cat, report)
        print(f"  {role:<15} {r['seconds']:7.2f} s   peak {r['peak_gib']:.2f} GiB")
        if "timings" in r:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items() if k != "total")
            print(f"      sections: {parts}; page {r['bytes'] / 1e6:.2f} MB at {report}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=41_200_000, help="rows of the large catalog")
    ap.add_argument("--small", type=int, default=1_000_000, help="rows of the small catalog (0: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--_run", choices=RUNS, help=argparse.SUPPRESS)
    ap.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._run:
        print(json.dumps(run_one(args._run, args.catalog, args.report)))
        return
    for n in [args.small, args.n] if args.small else [args.n]:
        bench(n, args.out)


if __name__ == "__main__":
    main()
