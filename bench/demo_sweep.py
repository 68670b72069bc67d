"""Which change to the demo's training recipe moves recall: schedule length, groups, class-row init.

    python bench/demo_sweep.py [--catalog catalogs/demo] [--runs A_random,B_imprint,...]
                               [--device auto] [--num-workers 2]

Run ``make demo`` first (it builds ``catalogs/demo``). Every run trains EfficientNet-Lite0 from its
ImageNet weights at 96 px (the demo's recipe: batch 32, lr 3e-4, no hue or saturation jitter, seed 0)
with one change, into ``catalogs/demo-sweep/<run>``, evaluates it on queries_v1 and queries_v2
against the one-year test database, and prints R@1 with its 95% interval and the paired difference
against ImageNet off the shelf. Finished runs are reused. The default runs are what the README's
sweep table reports (measured on the GPU machine: the long runs take ~16 minutes each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runs import demo  # noqa: E402

IMPRINT = ["--classifier-init", "imprint"]
RUNS: dict[str, tuple[int, int, int, list[str]]] = {  # name: groups, epochs, iterations per epoch, extra flags
    "A_random": (8, 8, 40, []),
    "B_imprint": (8, 8, 40, IMPRINT),
    "C_imprint_clr1e-3": (8, 8, 40, [*IMPRINT, "--classifiers-lr", "1e-3"]),
    "D_imprint_g16x20": (16, 16, 20, IMPRINT),
    "E_imprint_g32x10": (32, 32, 10, IMPRINT),
    "J_imprint_g8_32ep": (8, 32, 40, IMPRINT),
}


def groups_manifest(catalog: Path, groups: int) -> Path:
    """The demo's groups manifest with ``groups`` groups: split-groups' JSON names it (written when missing)."""
    return demo.groups_manifest(catalog, demo.DEMO, "--groups-num", groups)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=ROOT / "catalogs" / "demo")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, of: {', '.join(RUNS)}")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-workers", type=int, default=2)
    args = ap.parse_args()
    catalog = args.catalog
    if not (catalog / "manifests" / "eval_queries_v2.parquet").is_file():
        raise SystemExit(f"{catalog}: no demo catalog; run `make demo` first")
    sweep = catalog.parent / f"{catalog.name}-sweep"
    common = ["--image-size", demo.DEMO_IMAGE_SIZE, "--num-workers", args.num_workers, "--device", args.device]
    sets = [x for q in demo.EVAL_SETS for x in ("--eval-set", catalog / "manifests" / f"eval_{q}.parquet")]
    base = sweep / "eval_imagenet"
    if not all((base / q / "recalls.json").is_file() for q in demo.EVAL_SETS):
        demo.run_tool("vgtrain", "eval", "--weights", "imagenet", "--backbone", demo.DEMO_BACKBONE, *sets, "--out", base,
                      *common)  # fmt: skip
    fit_flags = [f for f in demo.DEMO_FIT if not f.startswith(("--epochs-num", "--iterations-per-epoch"))]
    from vgtrain.compare import compare

    lines = []
    for name in args.runs.split(","):
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
        groups, epochs, iterations, extra = RUNS[name]
        run = sweep / name
        meta = run / "last.meta.json"
        if not (meta.is_file() and json.loads(meta.read_text())["epoch"] >= epochs - 1):
            resume = ["--resume", run] if meta.is_file() else []
            demo.run_tool("vgtrain", "fit", "--groups", groups_manifest(catalog, groups), "--val",
                          catalog / "manifests" / "eval_val.parquet", "--out", run, *fit_flags,
                          "--groups-num", groups, "--epochs-num", epochs, "--iterations-per-epoch", iterations,
                          *extra, "--num-workers", args.num_workers, "--device", args.device, *resume)  # fmt: skip
        if not all((run / "eval" / q / "recalls.json").is_file() for q in demo.EVAL_SETS):
            demo.run_tool("vgtrain", "eval", "--weights", run / "last.pt", *sets, "--out", run / "eval", *common)
        cells = []
        for q in demo.EVAL_SETS:
            c = compare(run / "eval" / q, base / q)["recalls"][1]
            r = json.loads((run / "eval" / q / "recalls.json").read_text())
            lo, hi = r["intervals"]["flat"]["1"]
            dlo, dhi = c["interval"]
            cells.append(f"{r['recalls']['flat']['1']:5.1f} [{lo:4.1f}, {hi:4.1f}] {c['difference']:+5.1f} "
                         f"[{dlo:+.1f}, {dhi:+.1f}]")  # fmt: skip
        lines.append(f"{name:20s} {cells[0]:>36s} {cells[1]:>36s}")
    print(f"\n{'run':20s} {'v1 R@1 [CI], - off the shelf [CI]':>36s} {'v2 R@1 [CI], - off the shelf [CI]':>36s}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
