"""The sweep recipe (runs/sweep.py) and its table (vgtrain/sweep_table.py).

Fast tests build eval folders by hand (recalls.json + predictions.parquet written here, the recalls
counted here) and check the table's numbers, its intervals and the paired difference of a setting
with itself. The slow test runs a 2-setting sweep on the tiny city with the real commands, first
with ``--max-settings 1`` (an interrupted sweep), then in full: the first setting is not retrained
(file times), and the table's numbers are those of each run's recalls.json.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vgtrain.sweep_table import (
    SweepTableError,
    build_table,
    eval_folder,
    paired_seed_difference,
    seed_mean_interval,
    write_table,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "runs" / "sweep.py"


def load_recipe() -> ModuleType:
    """runs/sweep.py as a module (a recipe, not an installed package)."""
    spec = importlib.util.spec_from_file_location("runs_sweep_under_test", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sweep = load_recipe()


def write_eval(folder: Path, first_ranks: list[int | None], fingerprint: str = "fp0") -> dict[int, float]:
    """An eval folder whose query q has its first positive at rank ``first_ranks[q]`` (None: no positive)."""
    folder.mkdir(parents=True)
    rows = {"query_idx": [], "rank": [], "is_positive": []}
    for q, first in enumerate(first_ranks):
        for rank in range(10):
            rows["query_idx"].append(q)
            rows["rank"].append(rank)
            rows["is_positive"].append(first is not None and rank >= first)
    pq.write_table(pa.table(rows), folder / "predictions.parquet")
    n = len(first_ranks)
    recalls = {k: 100.0 * sum(f is not None and f < k for f in first_ranks) / n for k in (1, 5, 10)}
    report = {
        "protocol": {"n_queries": n, "eval_set_fingerprint": fingerprint},
        "recalls": {"flat": {str(k): v for k, v in recalls.items()}},
    }
    (folder / "recalls.json").write_text(json.dumps(report))
    return recalls


# two settings x two seeds, 8 queries: first-positive ranks per query
RANKS = {
    ("a", 0): [0, 0, 3, None, 0, 7, 1, 0],
    ("a", 1): [0, 2, 0, None, 0, 0, 9, 4],
    ("b", 0): [0, 0, 0, 0, 6, None, 0, 2],
    ("b", 1): [1, 0, 0, 0, None, 0, 0, 0],
}


def test_table_numbers_are_the_recalls_json_values_and_their_seed_mean(tmp_path):
    for (s, k), ranks in RANKS.items():
        write_eval(eval_folder(tmp_path, s, k, "q"), ranks)
    rows = build_table(tmp_path, ["a", "b"], [0, 1], ["q"], "a", options={"a": {"N": 1}})
    assert [(r["setting"], r["eval_set"]) for r in rows] == [("a", "q"), ("b", "q")]
    a, b = rows
    # counted by hand from RANKS (of 8 queries): a found at 1 by 4 and 4, at 5 by 6 and 6; b at 1 by 5 and 6,
    # at 5 by 6 and 7
    assert a["r1_per_seed"] == [50.0, 50.0] and a["r1"] == 50.0
    assert a["r5_per_seed"] == [75.0, 75.0] and a["r5"] == 75.0
    assert b["r1_per_seed"] == [62.5, 75.0] and b["r1"] == pytest.approx(68.75)
    assert b["r5_per_seed"] == [75.0, 87.5] and b["r5"] == pytest.approx(81.25)
    for r in rows:  # each table number is the mean of the recalls.json values
        for n in (1, 5):
            saved = [
                json.loads((eval_folder(tmp_path, r["setting"], k, "q") / "recalls.json").read_text()) for k in (0, 1)
            ]
            assert r[f"r{n}_per_seed"] == [s["recalls"]["flat"][str(n)] for s in saved]
            assert r[f"r{n}"] == pytest.approx(np.mean(r[f"r{n}_per_seed"]))
            assert r[f"r{n}_lo"] <= r[f"r{n}"] <= r[f"r{n}_hi"]
    assert (a["d1"], a["d1_lo"], a["d1_hi"]) == (0.0, 0.0, 0.0)  # the baseline against itself
    assert b["d1"] == pytest.approx(68.75 - 50.0) and b["d5"] == pytest.approx(81.25 - 75.0)
    assert b["d1_lo"] <= b["d1"] <= b["d1_hi"]
    assert json.loads(a["options"]) == {"N": 1} and a["baseline"] == "a" and a["n_queries"] == 8

    paths = write_table(tmp_path, rows, {"c": "skipped: too few groups"})
    back = pq.read_table(paths["parquet"]).to_pylist()
    assert [r["r1"] for r in back] == [a["r1"], b["r1"]] and back[1]["d5_hi"] == b["d5_hi"]
    md = paths["md"].read_text()
    assert f"| b | q | 8 | {b['r1']:.1f} [{b['r1_lo']:.1f}, {b['r1_hi']:.1f}] |" in md
    assert "- c: skipped: too few groups" in md
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "<td>b</td>" in page


def test_paired_difference_of_a_setting_with_itself_is_exactly_zero():
    rng = np.random.default_rng(3)
    hits = rng.random((3, 500)) < 0.4
    assert paired_seed_difference(hits, hits.copy()) == {"difference": 0.0, "interval": [0.0, 0.0]}


def test_intervals_match_resampling_the_query_indices():
    """Counts drawn from the distinct per-query values == resampling indices (same for every seed)."""
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 300)) < 0.5, rng.random((2, 300)) < 0.3
    idx = rng.integers(0, 300, size=(4000, 300))  # index resampling, the same for both seeds and both settings
    by_index = 100.0 * a.mean(axis=0)[idx].mean(axis=1)
    lo, hi = seed_mean_interval(a, resamples=4000)
    assert lo == pytest.approx(np.percentile(by_index, 2.5), abs=1.0)
    assert hi == pytest.approx(np.percentile(by_index, 97.5), abs=1.0)
    diff = 100.0 * (a.mean(axis=0) - b.mean(axis=0))[idx].mean(axis=1)
    d = paired_seed_difference(a, b, resamples=4000)
    assert d["difference"] == pytest.approx(100.0 * (a.mean() - b.mean()))
    assert d["interval"][0] == pytest.approx(np.percentile(diff, 2.5), abs=1.0)
    assert d["interval"][1] == pytest.approx(np.percentile(diff, 97.5), abs=1.0)
    assert seed_mean_interval(np.ones((2, 10), bool)) == (100.0, 100.0)


def test_table_refuses_disagreeing_files_and_other_eval_sets(tmp_path):
    write_eval(eval_folder(tmp_path, "a", 0, "q"), [0, None])
    write_eval(eval_folder(tmp_path, "b", 0, "q"), [0, 0], fingerprint="other")
    with pytest.raises(SweepTableError, match="different eval sets"):
        build_table(tmp_path, ["a", "b"], [0], ["q"], "a")
    saved = eval_folder(tmp_path, "a", 0, "q") / "recalls.json"
    report = json.loads(saved.read_text())
    report["recalls"]["flat"]["1"] = 100.0
    saved.write_text(json.dumps(report))
    with pytest.raises(SweepTableError, match=r"gives R@1 50\.000 but recalls.json says 100\.000"):
        build_table(tmp_path, ["a"], [0], ["q"], "a")
    with pytest.raises(SweepTableError, match="lacks recalls.json and predictions.parquet"):
        build_table(tmp_path, ["c"], [0], ["q"], None)


def test_presets_share_the_cosplace_setting_and_one_budget():
    assert sweep.PRESETS["all"] == [
        "cosplace", "naive", "alpha360", "groups1", "groups2", "groups4", "panoramas50", "panoramas25",
    ]  # fmt: skip
    assert sweep.SETTINGS["naive"] == {"M": 10, "alpha": 30, "N": 1, "L": 1, "groups_num": 1}
    assert sweep.SETTINGS["alpha360"]["alpha"] == 360 and sweep.SETTINGS["alpha360"]["L"] == 1
    full = {n: sweep.resolved(o, sweep.demo.DEMO) for n, o in sweep.SETTINGS.items()}
    assert sweep.check_budget(full, sweep.demo.DEMO) == 8 * 40 * 32
    assert sweep.groups_args(full["panoramas25"])[-4:] == ["--panorama-fraction", "0.25", "--fraction-seed", "0"]
    assert sweep.fit_args(full["groups1"], sweep.demo.DEMO)[-2:] == ["--groups-num", "1"]
    with pytest.raises(SystemExit, match="same number of images"):
        sweep.check_budget({**full, "long": {**full["cosplace"], "epochs_num": 16}}, sweep.demo.DEMO)


def test_bad_settings_file_is_one_line(tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"settings": {"a": {"gamma": 1}}}))
    with pytest.raises(SystemExit, match=r"^runs/sweep.py: setting 'a' has unknown option\(s\) gamma"):
        sweep.main([str(tmp_path / "cat"), "--settings", str(bad)])
    bad.write_text(json.dumps({"settings": {"a": {"groups-num": "2"}}}))
    with pytest.raises(SystemExit, match=r"setting 'a': groups_num = '2' is not a valid value"):
        sweep.main([str(tmp_path / "cat"), "--settings", str(bad)])
    bad.write_text("{")
    with pytest.raises(SystemExit, match="not readable JSON"):
        sweep.main([str(tmp_path / "cat"), "--settings", str(bad)])


@pytest.mark.slow
def test_tiny_sweep_resumes_and_its_table_is_the_recalls(tmp_path):
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps({"baseline": "two", "settings": {"two": {"groups_num": 2}, "one": {"groups_num": 1}}})
    )
    out = tmp_path / "sweep"
    argv = [sys.executable, str(RECIPE), str(tmp_path / "cat"), "--settings", str(settings), "--seeds", "0",
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
