"""A 2-setting sweep on the tiny city with the real commands (``runs/sweep.py`` in a subprocess).

First with ``--max-settings 1`` (a sweep interrupted after its first setting), then in full: the
first setting is not trained or evaluated again (file times), and the table's numbers are those of
each run's recalls.json; the baseline against itself is exactly 0 [0, 0]. The longest test of the
fast suite (~1 min: four vgtrain processes), so ``conftest.py`` schedules this module first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_sweep import RECIPE, sweep


@pytest.fixture
def sweep_catalog(tiny_catalog, tmp_path) -> Path:
    """A private copy of the tiny city's catalog with the demo's splits and eval sets (the tiny recipe's).

    Built in-process from the session's catalog, as ``runs/demo.py`` would with ``--preset tiny``
    (split-test of the recipe's year, split-val, the three eval sets), so the sweep's own
    ``vgdata eval-set`` calls find them written.
    """
    from vgdata.evalset import eval_set
    from vgdata.splits import split_test, split_val

    cat = tmp_path / "cat"
    shutil.copytree(tiny_catalog, cat)
    tiny = sweep.demo.TINY
    split_test(cat, year=tiny.test_year)
    split_val(cat, size=tiny.val_size, seed=0)
    eval_set(cat, name="val", database="val_database", queries="val_queries")
    for q in sweep.demo.EVAL_SETS:
        eval_set(cat, name=q, database="test_database", queries=q)
    return cat


def test_tiny_sweep_resumes_and_its_table_is_the_recalls(sweep_catalog, tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps({"baseline": "two", "settings": {"two": {"groups_num": 2}, "one": {"groups_num": 1}}})
    )
    out = tmp_path / "sweep"
    argv = [sys.executable, str(RECIPE), str(sweep_catalog), "--settings", str(settings), "--seeds", "0",
            "--out", str(out), "--recipe", "tiny", "--device", "cpu", "--num-workers", "0"]  # fmt: skip
    first = subprocess.run([*argv, "--max-settings", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert not (out / "one").exists() and "- one: not run yet (--max-settings 1)" in (out / "sweep.md").read_text()
    kept = [out / "two" / "seed0" / "last.pt", *(out / "two" / "seed0" / "eval").glob("*/recalls.json")]
    assert len(kept) == 3
    mtimes = {p: p.stat().st_mtime_ns for p in kept}

    second = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == mtimes  # the first setting was not trained or evaluated again
    fits = [line for line in second.stdout.splitlines() if line.startswith("$ vgtrain fit")]
    assert len(fits) == 1 and "/one/seed0" in fits[0]
    rows = pq.read_table(out / "sweep.parquet").to_pylist()
    assert [(r["setting"], r["eval_set"]) for r in rows] == [
        ("two", "queries_v1"), ("two", "queries_v2"), ("one", "queries_v1"), ("one", "queries_v2"),
    ]  # fmt: skip
    for r in rows:
        report = json.loads((out / r["setting"] / "seed0" / "eval" / r["eval_set"] / "recalls.json").read_text())
        for n in (1, 5):
            assert r[f"r{n}"] == report["recalls"]["flat"][str(n)] == r[f"r{n}_per_seed"][0]
        if r["setting"] == "two":
            assert (r["d1"], r["d1_lo"], r["d1_hi"]) == (0.0, 0.0, 0.0)
    assert json.loads((out / "timings.json").read_text())["two/seed0"]["state"] == "reused"
