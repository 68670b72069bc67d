"""The sweep recipe (runs/sweep.py) and its table (vgtrain/sweep_table.py).

Fast tests build eval folders by hand (recalls.json + predictions.parquet written here, the recalls
counted here) and check the table's numbers, its intervals and the paired difference of a setting
with itself; bench/ablations.py's tables and analyses on hand-made runs. The end-to-end sweep on the
tiny city is tests/test_sweep_e2e.py.
"""

from __future__ import annotations

import importlib.util
import json
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
    direction,
    eval_folder,
    pages,
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
    presets = {n: sweep.resolved(o, sweep.demo.DEMO) for n, o in sweep.preset_settings("all").items()}
    assert sweep.check_budget(presets, sweep.demo.DEMO) == 8 * 30 * 32  # the presets' shorter schedule
    assert "--iterations-per-epoch=30" in sweep.fit_args(presets["naive"], sweep.demo.DEMO)
    with pytest.raises(SystemExit, match="same number of images"):
        sweep.check_budget({**full, "long": {**full["cosplace"], "epochs_num": 16}}, sweep.demo.DEMO)


def test_direction_reads_the_interval_against_zero():
    assert direction(-3.0, -0.1) == "holds" and direction(0.1, 2.0) == "reversed"
    assert direction(-1.0, 1.0) == "not resolved" and direction(0.0, 0.0) == "not resolved"
    assert direction(-1.0, 0.0) == "not resolved"  # an interval touching 0 does not exclude it
    assert direction(0.5, 2.0, expected=1) == "holds" and direction(-2.0, -0.5, expected=1) == "reversed"
    with pytest.raises(ValueError, match="lo <= hi"):
        direction(1.0, -1.0)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        direction(-1.0, 1.0, expected=0)


def test_paper_tables_compare_each_preset_with_its_own_baseline(tmp_path):
    """bench/ablations.py's tables: Tab. 6 rows against groups4, the others against cosplace; verdicts by hand."""
    spec = importlib.util.spec_from_file_location("bench_ablations_under_test", ROOT / "bench" / "ablations.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n = 40  # first-positive rank 0 for the first `good` queries, none for the rest: R@1 = good / n
    good = {"cosplace": 30, "naive": 10, "alpha360": 31, "groups1": 20, "groups2": 29, "groups4": 20}
    good |= {"panoramas50": 20, "panoramas25": 28}
    for name, g in good.items():
        for k in (0, 1):
            write_eval(eval_folder(tmp_path, name, k, "q"), [0] * g + [None] * (n - g))
    md, page, verdicts = bench.paper_tables(tmp_path, [0, 1], ("q",))
    got = {v["setting"]: (v["preset"], v["baseline"], v["d1"], v["verdict"]) for v in verdicts}
    assert got == {
        # a query found by the setting and not the baseline counts +1/n: the differences are (good - base) / n
        "naive": ("tab5", "cosplace", 100 * (10 - 30) / n, "holds"),
        "alpha360": ("tab5", "cosplace", 100 * (31 - 30) / n, "not resolved"),
        "groups1": ("fig5", "cosplace", 100 * (20 - 30) / n, "holds"),
        "groups2": ("fig5", "cosplace", 100 * (29 - 30) / n, "not resolved"),
        "groups4": ("fig5", "cosplace", 100 * (20 - 30) / n, "holds"),
        "panoramas50": ("tab6", "groups4", 0.0, "not resolved"),
        "panoramas25": ("tab6", "groups4", 100 * (28 - 20) / n, "reversed"),
    }
    assert "| naive | Tab. 5: " in md and "| q | 25.0 vs 75.0 | -50.0 [" in md and md.count("#### ") == 3
    assert page.count("<html") == 1 and page.count("data:image/png;base64,") == 3
    assert pages([], title="t").count("<h2>") == 0


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


def test_bench_explanations_count_headings_and_seed_noise_by_hand(tmp_path):
    """bench/ablations.py's analyses on hand-made runs: heading shares, their paired difference, seed noise."""
    spec = importlib.util.spec_from_file_location("bench_ablations_explain", ROOT / "bench" / "ablations.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    catalog = tmp_path / "cat"
    (catalog / "manifests").mkdir(parents=True)
    # database 0 faces 10 deg, 1 faces 190 deg; 4 queries facing 0 deg (query 3: no heading)
    manifest = {"role": ["database", "database"] + ["query"] * 4, "idx": [0, 1, 0, 1, 2, 3],
                "heading": [10.0, 190.0, 0.0, 0.0, 0.0, None]}  # fmt: skip
    pq.write_table(pa.table(manifest), catalog / "manifests" / "eval_qv.parquet")
    # top-1 per query as (database_idx, is_positive), per setting and seed
    top1 = {
        ("cosplace", 0): [(0, True), (0, True), (1, False), (0, True)],
        ("cosplace", 1): [(0, True), (1, True), (0, False), (0, True)],
        ("blind", 0): [(1, True), (1, True), (0, False), (1, False)],
        ("blind", 1): [(1, True), (0, True), (0, True), (0, False)],
    }
    for (name, k), top in top1.items():
        folder = eval_folder(tmp_path / "run", name, k, "qv")
        folder.mkdir(parents=True)
        rows = {"query_idx": [0, 1, 2, 3], "rank": [0] * 4, "database_idx": [d for d, _ in top],
                "is_positive": [p for _, p in top]}  # fmt: skip
        pq.write_table(pa.table(rows), folder / "predictions.parquet")
        recalls = {str(n): 100.0 * sum(p for _, p in top) / 4 for n in (1, 5, 10)}
        report = {"protocol": {"n_queries": 4, "eval_set_fingerprint": "f"}, "recalls": {"flat": recalls}}
        (folder / "recalls.json").write_text(json.dumps(report))
    table = bench.heading_of_hits(tmp_path / "run", catalog, ["cosplace", "blind"], [0, 1], "qv")
    # cosplace: positives 3 and 3 of 4 (75%); same way (<= 45 deg, database 0; query 3 has no heading): 2 and 1
    # -> 37.5%; facing away (database 1, 190 deg): 0 and 1 -> 12.5%; wrong and same way: 0 and 1 -> 12.5%
    assert "| cosplace | 75.0 | 37.5 | +0.0 [+0.0, +0.0] | 12.5 | 12.5 |" in table
    # blind: positives 2 and 3 -> 62.5%; same way: 0 and 2 -> 25%, 12.5 points below cosplace; facing away:
    # 2 and 1 -> 37.5%; wrong and same way: query 2 of seed 0 -> 12.5%
    assert "| blind | 62.5 | 25.0 | -12.5 [" in table and table.rstrip().endswith("| 37.5 | 12.5 |")
    noise = bench.seed_noise(tmp_path / "run", ["cosplace", "blind"], [0, 1], ("qv",))
    assert "| cosplace | qv | 75.0 | 75.0 | +0.0 [+0.0, +0.0] |" in noise
    assert "| blind | qv | 50.0 | 75.0 | -25.0 [" in noise


def test_shipped_settings_files_load_with_one_budget():
    """runs/settings/*.json (the README's experiments) are valid sweep settings, each with one budget."""
    files = sorted((ROOT / "runs" / "settings").glob("*.json"))
    assert [f.name for f in files] == ["fig5_long.json"]
    settings, baseline = sweep.load_settings(files[0])
    assert baseline == "groups8_x2" and list(settings) == ["groups8_x2", "groups1_x2"]
    full = {n: sweep.resolved(o, sweep.demo.DEMO) for n, o in settings.items()}
    assert sweep.check_budget(full, sweep.demo.DEMO) == 16 * 30 * 32  # twice the presets' 8 x 30 x 32
