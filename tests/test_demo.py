"""``make demo``'s recipe (runs/demo.py): today's commands, one-line failures, what a second run reuses.

The slow test runs the whole recipe, as ``make demo`` does, on the tiny city (``--preset tiny``: the
real commands as subprocesses, a 2 x 2-iteration schedule), then runs it again and checks that nothing
is rendered, trained or evaluated twice and that the table is the same.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from vgdata.synth import GENERATOR_VERSION, PRESETS

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "runs" / "demo.py"


def load_recipe() -> ModuleType:
    """runs/demo.py as a module (a recipe, not an installed package)."""
    spec = importlib.util.spec_from_file_location("runs_demo_under_test", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


demo = load_recipe()


def test_failing_step_is_one_line_not_a_traceback():
    with pytest.raises(SystemExit) as err:
        demo._step([sys.executable, "-c", "raise SystemExit(3)"], "vgdata split-groups")
    assert str(err.value) == (
        "make demo: `vgdata split-groups` failed (exit 3); fix the error above and run `make demo` again"
    )
    assert demo._step([sys.executable, "-c", "print('{}')"], "ok", capture=True) == "{}\n"  # success: its stdout


def test_a_failing_command_ends_the_recipe_with_one_line(tmp_path, capsys):
    """A real vgdata command on a folder that is no catalog: its own error on stderr, then the recipe's line."""
    with pytest.raises(SystemExit) as err:
        demo.vgdata("split-groups", tmp_path / "nothing", "--min-images-per-class", "5")
    assert str(err.value).startswith("make demo: `vgdata split-groups` failed (exit ")
    assert capsys.readouterr().out.startswith(f"$ vgdata split-groups {tmp_path / 'nothing'} --min-images-per-class 5")


def test_the_demo_runs_todays_commands():
    """The options behind the README's measured table, written out by hand."""
    assert demo.DEMO_FIT == [
        "--epochs-num=8", "--iterations-per-epoch=40", "--lr=0.0003", "--hue=0.0", "--saturation=0.0",
        "--backbone", "EfficientNetLite0", "--backbone-weights", "imagenet",
        "--image-size", "96", "--val-image-size", "96", "--batch-size", "32", "--log-every", "40",
    ]  # fmt: skip
    # ImageNet EfficientNet-Lite0 with CosPlace's freezing (no --train-all-layers), 96 px (the 98 px crops)
    assert demo.DEMO.groups_args() == ["--min-images-per-class", "5"]  # groups_num: split-groups' default, 8
    assert (demo.DEMO.preset, demo.DEMO.seed, demo.DEMO.val_size, demo.DEMO.test_year) == ("demo", 0, 100, 2013)
    assert demo.TINY.fit_args()[-2:] == ["--groups-num", "2"] and demo.TINY.groups_args()[-2:] == ["--groups-num", "2"]


@pytest.mark.parametrize("name", ["demo", "tiny"])
def test_each_recipe_tests_on_its_presets_test_year(name):
    preset = PRESETS[demo.RECIPES[name].preset]
    expected = preset.test_year if preset.test_year is not None else max(preset.years)  # Preset.test_year's rule
    assert demo.RECIPES[name].test_year == expected
    assert demo.RECIPES["demo"].test_year == 2013  # SF-XL's test year


def test_synth_key_names_command_generator_and_preset():
    key = demo.synth_key(demo.DEMO)
    assert key["command"] == ["synth", "--preset", "demo", "--seed", "0"]
    assert key["generator"] == GENERATOR_VERSION
    assert key["preset"]["years"] == [2009, 2011, 2013, 2015, 2017] and key["preset"]["width"] == 640
    assert demo.synth_key(demo.TINY) != key


@pytest.mark.slow
def test_a_current_render_is_kept_and_a_stale_one_renders_again(tmp_path):
    raw, catalog = tmp_path / "cat-raw", tmp_path / "cat"
    raw.mkdir()
    catalog.mkdir()
    (catalog / "keep").write_text("built from this render")
    stamp = raw / "recipe.json"
    stamp.write_text(json.dumps({"key": demo.synth_key(demo.TINY)}))
    demo.render_city(raw, demo.TINY, derived=(catalog,))  # current: no command runs, nothing is removed
    assert sorted(p.name for p in raw.iterdir()) == ["recipe.json"] and (catalog / "keep").is_file()

    stale = demo.synth_key(demo.TINY) | {"generator": "vgdata-synth/0"}
    stamp.write_text(json.dumps({"key": stale}))
    demo.render_city(raw, demo.TINY, derived=(catalog,))  # another generator: rendered again, the catalog goes
    assert not catalog.exists()
    saved = json.loads(stamp.read_text())
    assert saved["key"] == demo.synth_key(demo.TINY)
    n = len(list((raw / "panoramas").glob("*.jpg")))
    assert saved["result"]["panoramas"] == n == len((raw / "panoramas.csv").read_text().splitlines()) - 1
    assert saved["result"]["queries_v1"] == PRESETS["tiny"].queries_v1 == len(list((raw / "queries_v1").glob("*.jpg")))


def _commands(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("$ ")]


def _table(out: str) -> str:
    return out[out.index("recall (%) on the demo's queries") :]


@pytest.mark.slow
def test_tiny_recipe_end_to_end_then_everything_reused(tmp_path):
    catalog = tmp_path / "demo"
    argv = [sys.executable, str(RECIPE), str(catalog), "--preset", "tiny", "--device", "cpu", "--num-workers", "0"]
    first = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    tools = [c.split()[1:3] for c in _commands(first.stdout)]
    assert tools == [
        ["vgdata", "synth"], ["vgdata", "build-catalog"], ["vgdata", "add-queries"], ["vgdata", "add-queries"],
        ["vgdata", "split-test"], ["vgdata", "split-val"], ["vgdata", "split-groups"],
        ["vgdata", "eval-set"], ["vgdata", "eval-set"], ["vgdata", "eval-set"], ["vgdata", "info"],
        ["vgtrain", "fit"], ["vgtrain", "eval"], ["vgtrain", "eval"], ["vgtrain", "eval"],
    ]  # fmt: skip
    # fit trains on the manifest split-groups reported, the only groups manifest there is
    fit = next(c for c in _commands(first.stdout) if c.startswith("$ vgtrain fit")).split()
    groups = Path(fit[fit.index("--groups") + 1])
    assert list((catalog / "manifests").glob("groups_*.parquet")) == [groups]
    assert f": {groups} (written)" in first.stdout
    run = tmp_path / "demo-run"
    meta = json.loads((run / "last.meta.json").read_text())
    assert meta["epoch"] == 1 and meta["config"]["groups_num"] == 2 and meta["config"]["seed"] == 0
    assert meta["config"]["backbone"] == "EfficientNetLite0" and meta["config"]["image_size"] == 96

    # the table: one block per query set, its numbers those of the recalls.json files
    table = _table(first.stdout)
    for q, n in (("queries_v1", PRESETS["tiny"].queries_v1), ("queries_v2", PRESETS["tiny"].queries_v2)):
        assert re.search(rf"^{q}: {n} queries, \d+ test database images, chance level [\d.]+%$", table, re.M)
        for folder, label in (("eval_random", "random init"), ("eval_imagenet", "ImageNet off the shelf"),
                              ("eval_trained", "trained (CosPlace)")):  # fmt: skip
            report = json.loads((run / folder / q / "recalls.json").read_text())
            assert report["protocol"]["n_queries"] == n
            r1, (lo, hi) = report["recalls"]["flat"]["1"], report["intervals"]["flat"]["1"]
            assert f"  {label:24s}{f'{r1:5.1f} [{lo:4.1f}, {hi:4.1f}]':>20s}" in table
        assert f"report: {run / 'eval_trained' / q / 'report.html'}" in table
        assert (run / "eval_trained" / q / "report.html").is_file()

    mtimes = {p: p.stat().st_mtime_ns for p in [run / "last.pt", *run.glob("eval_*/*/recalls.json")]}
    second = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    again = [c.split()[1:3] for c in _commands(second.stdout)]
    assert ["vgdata", "synth"] not in again and not any(t == "vgtrain" for t, _ in again)
    assert second.stdout.count("(up to date)") == 3 and f": {groups} (reused)" in second.stdout
    assert _table(second.stdout) == table
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    # a newer eval manifest makes its evals stale (make's rule), and only those run again
    (catalog / "manifests" / "eval_queries_v2.parquet").touch()
    third = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    evals = [c for c in _commands(third.stdout) if c.startswith("$ vgtrain")]
    assert len(evals) == 3 and all("eval_queries_v2.parquet" in c and "eval_queries_v1" not in c for c in evals)
    assert all(c.split()[c.split().index("--out") + 1].endswith("/queries_v2") for c in evals)
    assert _table(third.stdout) == table  # same manifest content, same weights: same numbers
