"""Does the demo's margin hold for another training seed, on queries nobody tuned on?

    python bench/demo_seeds.py [--catalog catalogs/demo] [--seeds 0,1] [--queries-seed 7]
                               [--device auto] [--num-workers 2]

Run ``make demo`` first (it builds ``catalogs/demo`` and trains seed 0 in ``catalogs/demo-run``).
This script then, in the same run:

1. renders a held-out query set of the same city (``vgdata synth --queries-seed K
   --queries-only``: 320 + 320 new photos; the panoramas are those of the demo, byte for byte);
2. adds it to a working copy of the catalog (``catalogs/demo-heldout<K>``: image files
   hard-linked, everything else copied, so the demo's own catalog and manifests stay as they
   are) and writes eval sets of those queries against the same one-year test database;
3. trains the demo's schedule once more for every seed not trained yet (seed 0 is the demo's
   run; seed S > 0 goes to ``catalogs/demo-run-seed<S>``), on the demo's groups manifest;
4. evaluates random init, ImageNet off the shelf and every trained seed on the held-out sets,
   and prints R@1 / R@5 with 95% bootstrap intervals and the paired difference trained minus
   off the shelf (paired bootstrap over the queries).

Finished steps are reused when the script runs again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runs import demo  # noqa: E402


def working_copy(catalog: Path, copy: Path) -> None:
    """``copy`` = ``catalog`` with its image files hard-linked (no bytes copied) and the rest copied."""
    if (copy / "build.json").is_file():
        return
    shutil.rmtree(copy, ignore_errors=True)

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".jpg"):
            os.link(src, dst)  # images are never rewritten in place
        else:
            shutil.copy2(src, dst)  # catalog.duckdb, Parquet, JSON: the copy may change them

    shutil.copytree(catalog, copy, copy_function=link_or_copy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--catalog", type=Path, default=ROOT / "catalogs" / "demo")
    ap.add_argument("--seeds", default="0,1", help="training seeds (0 is the demo's own run)")
    ap.add_argument("--queries-seed", type=int, default=7, help="seed of the held-out query set")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-workers", type=int, default=2)
    args = ap.parse_args()
    catalog = args.catalog
    if not (catalog / "build.json").is_file() or not (catalog.parent / f"{catalog.name}-run" / "last.pt").is_file():
        raise SystemExit(f"no demo catalog and run at {catalog}: run `make demo` first")
    k = args.queries_seed
    if k == 0:
        raise SystemExit("--queries-seed 0 is the demo's own query set; pick another seed")

    # 1-2. held-out queries of the same city, in a working copy of the catalog
    raw = catalog.parent / f"{catalog.name}-queries{k}-raw"
    if not (raw / "README.txt").is_file():
        demo.vgdata("synth", raw, "--preset", "demo", "--seed", 0, "--queries-seed", k, "--queries-only")
    copy = catalog.parent / f"{catalog.name}-heldout{k}"
    working_copy(catalog, copy)
    sets = {f"heldout{k}_v1": ("--photos", raw / "queries_v1"), f"heldout{k}_v2": ("--poses", raw / "queries_v2.csv")}
    heldout = {}
    for name, source in sets.items():
        demo.vgdata("add-queries", copy, "--collection", name, *source)
        r = demo.vgdata("eval-set", copy, "--name", name, "--database", "test_database", "--queries", name)
        heldout[name] = Path(r["manifest"])

    # 3. one run per seed (seed 0: the demo's)
    runs = {}
    groups = demo.groups_manifest(catalog)  # the demo's (split-groups reuses it)
    val = Path(demo.vgdata("eval-set", catalog, "--name", "val", "--database", "val_database",
                           "--queries", "val_queries")["manifest"])  # fmt: skip
    for seed in (int(s) for s in args.seeds.split(",")):
        run = catalog.parent / (f"{catalog.name}-run" if seed == 0 else f"{catalog.name}-run-seed{seed}")
        demo.train(run, groups=groups, val=val, device=args.device, num_workers=args.num_workers, seed=seed)
        runs[seed] = run

    # 4. every network on the held-out sets (the untrained baselines once, in the working copy)
    names = tuple(sets)
    common = {"device": args.device, "num_workers": args.num_workers, "eval_sets": names, "baselines": copy / "evals"}
    per_seed = {seed: demo.evaluate_all(run, heldout, **common) for seed, run in runs.items()}
    print(f"\nheld-out queries (--queries-seed {k}) against the one-year test database; 95% bootstrap intervals")
    summary = {}
    for seed, folders in per_seed.items():
        print(f"\ntraining seed {seed} ({runs[seed]}):")
        print("\n".join(demo.summary_rows(folders, eval_sets=names)))
        summary[str(seed)] = {
            f"{model}/{q}": json.loads((folder / "recalls.json").read_text())["recalls"]["flat"]
            for (model, q), folder in folders.items()
        }
    out = catalog.parent / f"{catalog.name}-seeds.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nrecalls: {out}")


if __name__ == "__main__":
    main()
