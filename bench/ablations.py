"""The paper's ablations (Tab. 5, Fig. 5, Tab. 6) on the demo city: the sweep, its wall time, its table.

    python bench/ablations.py [--catalog catalogs/demo] [--preset all] [--seeds 0 1]
                              [--max-settings K] [--device auto] [--num-workers 2]

Runs ``runs/sweep.py CATALOG --preset all --seeds 0 1`` (a subprocess: the real commands; the
catalog is built the demo's way when missing), then prints the wall time of every setting and seed
trained or evaluated in this run (``RUN_DIR/timings.json``), the total, and the table
(``RUN_DIR/sweep.md``; ``sweep.html`` holds the plot). Finished settings are reused, so a second
run only prints the table. In full: 8 settings x 2 seeds of the demo's schedule.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=ROOT / "catalogs" / "demo")
    ap.add_argument("--preset", default="all", help="tab5, fig5, tab6 or all")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, help="run folder (default: CATALOG-ablations)")
    ap.add_argument("--max-settings", type=int, help="only the first K settings (a trial run)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-workers", type=int, default=2)
    args = ap.parse_args()
    out = args.out or args.catalog.parent / f"{args.catalog.name}-ablations"
    argv = [sys.executable, str(ROOT / "runs" / "sweep.py"), str(args.catalog), "--preset", args.preset,
            "--seeds", *map(str, args.seeds), "--out", str(out), "--device", args.device,
            "--num-workers", str(args.num_workers)]  # fmt: skip
    if args.max_settings is not None:
        argv += ["--max-settings", str(args.max_settings)]
    print("$ " + " ".join(argv), flush=True)
    start = time.perf_counter()
    done = subprocess.run(argv)
    total = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"bench/ablations.py: runs/sweep.py failed (exit {done.returncode}); see its error above")
    timings = json.loads((out / "timings.json").read_text())
    print("\nwall time per setting and seed (this run):")
    for key, t in timings.items():
        print(f"  {key:24s} {t['seconds']:8.1f} s  {t['state']}")
    ran = sum(t["seconds"] for t in timings.values())
    print(f"  {'settings, in all':24s} {ran:8.1f} s")
    print(f"  {'total (with the catalog)':24s} {total:8.1f} s ({total / 60:.1f} min)")
    print("\n" + (out / "sweep.md").read_text(), end="")
    print(f"plot: {out / 'sweep.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
