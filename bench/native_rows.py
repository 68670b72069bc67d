"""Planning cost of a native dataset import (``build-catalog --from``), per metadata row.

    python bench/native_rows.py [--rows 200000] [--repeats 3]

Each measurement runs in a fresh subprocess: ``--rows`` MSLS-like reader rows (lat/lon, heading,
ISO date, nine attributes) go through :func:`vgdata.sources.native.prepare_rows` (path check as text,
heading wrap, timestamp, vectorised UTM). Printed: rows/s (median of ``--repeats``), the peak
memory per row of the reader's rows and of the planned items (VmHWM deltas), and, as the baseline
measured in the same run, the same rows with every path resolved on the file system
(``safe_relative`` following links, the check the workers now do per file), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np
from vgdata.sources import common, native

n, resolve = int(sys.argv[1]), sys.argv[2] == "1"
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = hwm()
rng = np.random.default_rng(0)
lat, lon = 37.7 + rng.random(n) * 0.1, -122.5 + rng.random(n) * 0.1
rows = [{"path": f"train_val/sf/query/images/{i:022d}.jpg", "source": "train_val/sf/query/raw.csv", "row": i + 1,
         "pano_id": f"{i:022d}", "lat": float(lat[i]), "lon": float(lon[i]), "heading": 12.5,
         "timestamp": "2018-05-27", "attrs": {"split": "val", "city": "sf", "sequence_id": f"s{i // 30}",
         "frame": i % 30, "night": False, "view_direction": "Forward", "is_pano": False,
         "source_east": 1.0, "source_north": 2.0}} for i in range(n)]
after_rows = hwm()
if resolve:  # the baseline: every path resolved on the file system, as before
    real = common.safe_relative
    native.safe_relative = lambda root, text, follow_links=True: real(root, text)
t = time.perf_counter()
items = native.prepare_rows("c", Path("/tmp"), rows, common.new_rejects())
seconds = time.perf_counter() - t
assert len(items) == n
print(json.dumps({"seconds": seconds, "rows_mib": after_rows - base, "items_mib": hwm() - after_rows}))
"""


def run(rows: int, resolve: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(rows), "1" if resolve else "0"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    ours = [run(a.rows, False) for _ in range(a.repeats)]
    base = [run(a.rows, True) for _ in range(a.repeats)]
    t_ours = statistics.median(r["seconds"] for r in ours)
    t_base = statistics.median(r["seconds"] for r in base)
    rows_kib = statistics.median(r["rows_mib"] for r in ours) * 1024 / a.rows
    items_kib = statistics.median(r["items_mib"] for r in ours) * 1024 / a.rows
    print(f"rows: {a.rows}, repeats: {a.repeats} (medians)")
    print(f"prepare_rows: {t_ours:.2f} s = {a.rows / t_ours:,.0f} rows/s")
    print(f"baseline (paths resolved on the file system): {t_base:.2f} s = {a.rows / t_base:,.0f} rows/s")
    print(f"ratio ours/baseline time: {t_ours / t_base:.2f}")
    print(f"memory per row: reader rows {rows_kib:.2f} KiB + planned items {items_kib:.2f} KiB")


if __name__ == "__main__":
    main()
