"""A sweep: settings of split-groups and training, each trained with the same budget and seeds, one table.

    python runs/sweep.py CATALOG (--preset tab5|fig5|tab6|all | --settings FILE.json) [--seeds 0 1]
                         [--out RUN_DIR (default CATALOG-ablations)] [--baseline NAME] [--max-settings K] [--device auto]
                         [--num-workers 2] [--recipe demo|tiny]

A recipe like runs/demo.py (whose functions it reuses): every step is the real ``vgdata`` or
``vgtrain`` command, run as a subprocess. CATALOG is built the demo's way when missing
(``runs/demo.py``'s :func:`build_demo_catalog`: the city, the one-year test database, the val split
and the queries_v1 / queries_v2 eval sets); an existing catalog is used as it is (never re-rendered). Then, per setting (in order) and seed:

1. ``vgdata split-groups CATALOG`` with the setting's options (the manifest path from its JSON); a
   setting the catalog cannot serve (e.g. fewer groups than ``groups_num``) is skipped, with
   split-groups' one-line error in the table's notes;
2. ``vgtrain fit`` into ``RUN_DIR/<setting>/seed<k>/`` with the recipe's schedule (runs/demo.py's
   DEMO: EfficientNet-Lite0 from ImageNet, 96 px, lr 3e-4, 8 epochs x 40 iterations x 32 images)
   and the setting's groups; fit trains group ``epoch % groups_num`` each epoch, so every setting
   sees the same number of images (epochs x iterations x batch: checked equal across settings);
3. ``vgtrain eval`` of its ``last.pt`` on the eval sets into ``RUN_DIR/<setting>/seed<k>/eval/<set>/``.

Resumable: a run's ``last.meta.json`` says which groups manifest, schedule, backbone and seed it
trained and how many epochs it finished (the same run is reused or resumed; another is trained
anew), and an eval whose ``recalls.json`` is newer than the weights and the eval manifest is kept,
so a finished setting/seed is never re-run. At the end :mod:`vgtrain.sweep_table` writes
``RUN_DIR/sweep.parquet``, ``sweep.md`` and ``sweep.html`` (R@1 / R@5 over seeds with 95% intervals,
the paired difference against the baseline setting) and ``RUN_DIR/timings.json`` (seconds per
setting and seed in this invocation).

``--settings FILE.json``: ``{"baseline": "a", "settings": {"a": {...}, "b": {...}}}`` (or just the
``settings`` mapping); each setting's options among :data:`SPLIT_KEYS` and :data:`TRAIN_KEYS`
(``-`` or ``_`` in the names), the rest from the recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runs import demo  # noqa: E402

SPLIT_KEYS = (
    "M",
    "alpha",
    "N",
    "L",
    "min_images_per_class",
    "groups_num",
    "panorama_fraction",
    "fraction_seed",
    "years",
)
"""Setting options passed to ``vgdata split-groups`` (``groups_num`` also to fit)."""
TRAIN_KEYS = ("backbone", "epochs_num", "iterations_per_epoch")
"""Setting options passed to ``vgtrain fit``."""
COSPLACE = {"M": 10, "alpha": 30, "N": 5, "L": 2, "groups_num": 8}
"""CosPlace's groups (the paper's defaults): every preset's baseline."""
SETTINGS: dict[str, dict[str, Any]] = {
    "cosplace": COSPLACE,
    "naive": {**COSPLACE, "N": 1, "L": 1, "groups_num": 1},  # Tab. 5: adjacent square cells, one group
    "alpha360": {**COSPLACE, "alpha": 360, "L": 1},  # Tab. 5: heading ignored
    "groups1": {**COSPLACE, "groups_num": 1},  # Fig. 5: 1, 2, 4 (and cosplace's 8) groups
    "groups2": {**COSPLACE, "groups_num": 2},
    "groups4": {**COSPLACE, "groups_num": 4},
    # Tab. 6: 50% / 25% of the panoramas, against groups4 (100%). Four groups, not eight: on the demo city a
    # quarter of the panoramas leaves only 4 groups with classes of >= 5 images, and the three rows must
    # differ in the data only.
    "panoramas50": {**COSPLACE, "groups_num": 4, "panorama_fraction": 0.5, "fraction_seed": 0},
    "panoramas25": {**COSPLACE, "groups_num": 4, "panorama_fraction": 0.25, "fraction_seed": 0},
}
"""The paper's ablations on the demo city (the 8-group, 100% setting, ``cosplace``, is shared)."""
PRESETS = {
    "tab5": ["cosplace", "naive", "alpha360"],
    "fig5": ["cosplace", "groups1", "groups2", "groups4"],
    "tab6": ["groups4", "panoramas50", "panoramas25"],
}
PRESETS["all"] = list(dict.fromkeys(s for p in ("tab5", "fig5", "tab6") for s in PRESETS[p]))
BASELINE = "cosplace"
PRESET_TRAINING = {"iterations_per_epoch": 30}
"""The presets' schedule: the demo's 8 epochs at 30 iterations (7,680 images per run, 3/4 of the demo's
budget), so that ``--preset all --seeds 0 1`` (16 runs) fits in an hour on 2 CPU cores."""


def preset_settings(preset: str) -> dict[str, dict[str, Any]]:
    """The settings of a preset, each with :data:`PRESET_TRAINING` (a setting's own options win)."""
    return {n: {**PRESET_TRAINING, **SETTINGS[n]} for n in PRESETS[preset]}


PAPER: dict[str, tuple[str, dict[str, str]]] = {
    "tab5": (
        "cosplace",
        {
            "naive": "Tab. 5: square cells, adjacent classes in one group (N 1, L 1) do clearly worse",
            "alpha360": "Tab. 5: ignoring heading (alpha 360) does clearly worse",
        },
    ),
    "fig5": (
        "cosplace",
        {
            "groups1": "Fig. 5: one group instead of eight costs about 1 point of R@1",
            "groups2": "Fig. 5: fewer groups than eight, lower recall",
            "groups4": "Fig. 5: fewer groups than eight, lower recall",
        },
    ),
    "tab6": (
        "groups4",
        {
            "panoramas50": "Tab. 6: less training data costs recall",
            "panoramas25": "Tab. 6: less training data costs recall",
        },
    ),
}
"""Per preset: its baseline and, per setting, the paper's claim; every claim says the setting is below it.

The directions only: REFERENCE.md holds no numbers of the paper's Tab. 5, Fig. 5 or Tab. 6."""


def fail(message: str) -> SystemExit:
    """A one-line error of the sweep."""
    return SystemExit(f"runs/sweep.py: {message}")


def normalise(name: str, options: Any) -> dict[str, Any]:
    """A setting's options with ``_`` names, checked against :data:`SPLIT_KEYS` and :data:`TRAIN_KEYS`."""
    if not isinstance(options, dict):
        raise fail(f"setting {name!r} must be an object of options, got {options!r}")
    out = {str(k).replace("-", "_"): v for k, v in options.items()}
    unknown = sorted(set(out) - set(SPLIT_KEYS) - set(TRAIN_KEYS))
    if unknown:
        raise fail(
            f"setting {name!r} has unknown option(s) {', '.join(unknown)}; use {', '.join(SPLIT_KEYS + TRAIN_KEYS)}"
        )
    for key, value in out.items():
        whole = (
            key in _WHOLE
            and isinstance(value, int)
            and not isinstance(value, bool)
            and value >= 1 - (key == "fraction_seed")
        )
        number = key in _NUMBER and isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        text = key == "backbone" and isinstance(value, str) or key == "years" and isinstance(value, str | list)
        if not (whole or number or text):
            raise fail(f"setting {name!r}: {key} = {value!r} is not a valid value")
    return out


_WHOLE = ("N", "L", "min_images_per_class", "groups_num", "epochs_num", "iterations_per_epoch", "fraction_seed")
_NUMBER = ("M", "alpha", "panorama_fraction")


def load_settings(path: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """``--settings FILE.json``: the settings by name (in file order) and the file's baseline, if any."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise fail(f"--settings {path}: not readable JSON ({e})") from None
    raw = data.get("settings", data) if isinstance(data, dict) else None
    if not isinstance(raw, dict) or not raw or "baseline" in raw:
        raise fail(f'--settings {path}: expected {{"settings": {{NAME: {{OPTION: VALUE}}}}, "baseline": NAME}}')
    for name in raw:
        if not name or "/" in name or name.startswith("."):
            raise fail(f"--settings {path}: {name!r} cannot name a run folder")
    return {n: normalise(n, o) for n, o in raw.items()}, data.get("baseline") if "settings" in data else None


def resolved(options: dict[str, Any], recipe: demo.Recipe) -> dict[str, Any]:
    """Every option of a setting: its own, else the recipe's (M, alpha, N, L: split-groups' defaults)."""
    base = {
        **COSPLACE,
        "groups_num": recipe.groups_num or COSPLACE["groups_num"],
        "min_images_per_class": recipe.min_images_per_class,
        "backbone": demo.DEMO_BACKBONE,
        "epochs_num": recipe.schedule["epochs_num"],
        "iterations_per_epoch": recipe.schedule["iterations_per_epoch"],
    }
    return {**base, **options}


def groups_args(o: dict[str, Any]) -> list[str]:
    """``vgdata split-groups`` options of a resolved setting."""
    args = ["--M", o["M"], "--alpha", o["alpha"], "--N", o["N"], "--L", o["L"]]
    args += ["--min-images-per-class", o["min_images_per_class"], "--groups-num", o["groups_num"]]
    if "panorama_fraction" in o:
        args += ["--panorama-fraction", o["panorama_fraction"], "--fraction-seed", o.get("fraction_seed", 0)]
    if "years" in o:
        years = o["years"]
        args += ["--years", ",".join(map(str, years)) if isinstance(years, list) else years]
    return [str(a) for a in args]


def setting_schedule(o: dict[str, Any], recipe: demo.Recipe) -> dict[str, Any]:
    """The recipe's ``vgtrain fit`` schedule with a resolved setting's epochs and iterations per epoch."""
    return {**recipe.schedule, "epochs_num": o["epochs_num"], "iterations_per_epoch": o["iterations_per_epoch"]}


def fit_args(o: dict[str, Any], recipe: demo.Recipe) -> list[str]:
    """``vgtrain fit`` options of a resolved setting (the recipe's, with the setting's schedule and groups)."""
    schedule = setting_schedule(o, recipe)
    args = replace(recipe, groups_num=int(o["groups_num"]), schedule=schedule).fit_args()
    if o["backbone"] != demo.DEMO_BACKBONE:  # ImageNet weights ship for EfficientNet-Lite0 only
        i = args.index("--backbone")
        args[i + 1] = o["backbone"]
        del args[i + 2 : i + 4]
    return args


def check_budget(settings: dict[str, dict[str, Any]], recipe: demo.Recipe) -> int:
    """Images seen per run (epochs x iterations x batch), the same for every setting; else a one-line error."""
    budgets = {
        n: int(o["epochs_num"]) * int(o["iterations_per_epoch"]) * recipe.batch_size for n, o in settings.items()
    }
    if len(set(budgets.values())) > 1:
        listed = ", ".join(f"{n} {b}" for n, b in budgets.items())
        raise fail(f"every setting must see the same number of images (epochs x iterations x batch): {listed}")
    return next(iter(budgets.values()))


def eval_manifests(catalog: Path, recipe: demo.Recipe) -> dict[str, Path]:
    """The val and eval-set manifests by name; a missing catalog is first built the demo's way.

    An existing catalog is never rendered again or removed (``build_demo_catalog`` would do so when
    its city is stale, together with the demo's run): its eval sets come from ``vgdata eval-set``
    (reused when written), which needs the demo's splits (``split-test``, ``split-val``).
    """
    if not (catalog / "build.json").is_file():
        return demo.build_demo_catalog(catalog, catalog.parent / f"{catalog.name}-raw", recipe)
    manifests = {}
    sets = {"val": ("val_database", "val_queries"), **{q: ("test_database", q) for q in demo.EVAL_SETS}}
    for name, (database, queries) in sets.items():
        r = demo.vgdata("eval-set", catalog, "--name", name, "--database", database, "--queries", queries)
        manifests[name] = Path(r["manifest"])
    return manifests


def split_groups(catalog: Path, o: dict[str, Any]) -> tuple[Path | None, str]:
    """``vgdata split-groups`` for a setting: (manifest, "") or (None, its one-line error)."""
    argv = ["split-groups", str(catalog), *groups_args(o)]
    print("$ vgdata " + " ".join(argv), flush=True)
    done = subprocess.run(demo.command("vgdata") + argv + ["--json"], capture_output=True, text=True)
    if done.returncode:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return None, (lines[-1] if lines else f"vgdata split-groups failed (exit {done.returncode})")
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None, f"vgdata split-groups printed no JSON: {done.stdout[:200]!r}"
    print(f"  {result['manifest_classes']} classes, {result['manifest_images']} images: {result['manifest']}")
    return Path(result["manifest"]), ""


def fit(run: Path, groups: Path, val: Path, o: dict[str, Any], recipe: demo.Recipe, seed: int, common: list) -> bool:
    """``vgtrain fit`` unless ``run/last.meta.json`` is a finished run of the same groups, schedule, backbone, seed.

    An unfinished run of the same is resumed, a run of anything else removed first. True when fit ran.
    """
    meta_path = run / "last.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    args = fit_args(o, recipe)
    schedule = setting_schedule(o, recipe)
    same = meta is not None and Path(meta["config"]["groups"]).name == groups.name
    same = same and all(meta["config"].get(k) == v for k, v in schedule.items())
    same = same and meta["config"].get("backbone") == o["backbone"] and meta["config"].get("seed") == seed
    same = same and meta["config"].get("groups_num") == o["groups_num"]
    if meta is not None and not same:
        shutil.rmtree(run)
    if same and meta["epoch"] >= int(o["epochs_num"]) - 1:
        return False
    resume = ["--resume", run] if same else []
    demo.run_tool(
        "vgtrain", "fit", "--groups", groups, "--val", val, "--out", run, *args, "--seed", seed, *common, *resume
    )
    return True


def evaluate(run: Path, manifests: dict[str, Path], common: list) -> bool:
    """``vgtrain eval`` of ``run/last.pt`` on the stale eval sets into ``run/eval/<set>``; True when it ran."""
    weights = run / "last.pt"
    todo = []
    for q in demo.EVAL_SETS:
        saved = run / "eval" / q / "recalls.json"
        fresh = saved.is_file() and saved.stat().st_mtime >= max(manifests[q].stat().st_mtime, weights.stat().st_mtime)
        if not fresh:
            todo.append(q)
    if not todo:
        return False
    out = run / "eval" / todo[0] if len(todo) == 1 else run / "eval"  # a single eval set writes straight into --out
    sets = [a for q in todo for a in ("--eval-set", manifests[q])]
    demo.run_tool("vgtrain", "eval", "--weights", weights, *sets, "--out", out, "--image-size", demo.DEMO_IMAGE_SIZE,
                  *common, json_out=True)  # fmt: skip
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and write its table."""
    ap = argparse.ArgumentParser(prog="runs/sweep.py", description=__doc__.splitlines()[0])
    ap.add_argument("catalog", type=Path)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=sorted(PRESETS), help="the paper's ablations (Tab. 5, Fig. 5, Tab. 6)")
    which.add_argument("--settings", type=Path, help="a JSON file of named settings")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds (default 0 1)")
    ap.add_argument("--out", type=Path, help="run folder (default: CATALOG-ablations)")
    ap.add_argument("--baseline", help=f"setting the others are compared with (default {BASELINE} or the first)")
    ap.add_argument("--max-settings", type=int, help="run only the first K settings (the table covers those)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--recipe", choices=sorted(demo.RECIPES), default="demo", help="the demo's recipe (tiny: tests)")
    args = ap.parse_args(argv)
    recipe, catalog = demo.RECIPES[args.recipe], args.catalog
    if args.preset:
        settings, baseline = preset_settings(args.preset), None
    else:
        settings, baseline = load_settings(args.settings)
    baseline = args.baseline or baseline or (BASELINE if BASELINE in settings else next(iter(settings)))
    if baseline not in settings:
        raise fail(f"--baseline {baseline!r} is not one of the settings: {', '.join(settings)}")
    if args.max_settings is not None and args.max_settings < 1:
        raise fail(f"--max-settings must be >= 1, got {args.max_settings}")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise fail(f"--seeds must be distinct integers >= 0, got {args.seeds}")
    full = {n: resolved(o, recipe) for n, o in settings.items()}
    images = check_budget(full, recipe)
    run_dir = args.out or catalog.parent / f"{catalog.name}-ablations"  # shared by the presets: cosplace once
    manifests = eval_manifests(catalog, recipe)
    common = ["--device", args.device, "--num-workers", args.num_workers]
    chosen = list(full)[: args.max_settings]
    notes = {n: f"not run yet (--max-settings {args.max_settings})" for n in full if n not in chosen}
    done, timings = [], {}
    for name in chosen:
        o = full[name]
        print(f"\n== setting {name}: {json.dumps(settings[name])} ({images} images seen per run)", flush=True)
        groups, error = split_groups(catalog, o)
        if groups is None:
            print(f"  skipped {name}: {error}", flush=True)
            notes[name] = f"skipped: {error}"
            continue
        for seed in args.seeds:
            start = time.perf_counter()
            run = run_dir / name / f"seed{seed}"
            trained = fit(run, groups, manifests["val"], o, recipe, seed, common)
            evaluated = evaluate(run, manifests, common)
            seconds = time.perf_counter() - start
            state = "trained" if trained else "evaluated" if evaluated else "reused"
            timings[f"{name}/seed{seed}"] = {"seconds": round(seconds, 2), "state": state}
            print(f"  {name} seed {seed}: {state} in {seconds:.1f} s", flush=True)
        done.append(name)
    from vgtrain.fsio import atomic_write_text
    from vgtrain.sweep_table import build_table, write_table

    atomic_write_text(run_dir / "timings.json", json.dumps(timings, indent=2) + "\n")
    if baseline not in done:
        notes.setdefault(baseline, "baseline not run: no differences")
    rows = build_table(run_dir, done, args.seeds, demo.EVAL_SETS, baseline if baseline in done else None,
                       options={n: settings[n] for n in done})  # fmt: skip
    paths = write_table(run_dir, rows, notes)
    print("\n" + paths["md"].read_text(), end="")
    print(f"table: {paths['parquet']}, {paths['md']}, {paths['html']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a sweep-table error (or another library error) is one line, not a traceback
        from vgtrain.errors import VgtrainError

        if isinstance(e, VgtrainError):
            raise SystemExit(f"runs/sweep.py: {e}") from None
        raise
