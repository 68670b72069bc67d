"""vgtrain compare: paired comparison of two eval folders (synthetic files and real `vgtrain eval` outputs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from cli import vgtrain_app
from vgtrain.compare import CompareError, compare, first_hit_ranks
from vgtrain.errors import VgtrainError

VALUES = (1, 5, 10, 20)
FP = "f" * 64
runner = CliRunner()


def write_eval(folder: Path, first: list[int | None], *, k: int = 20, fingerprint: str | None = FP) -> Path:
    """A folder like `vgtrain eval` writes: per query, the 0-based rank of its first positive (None: none in top k).

    Ranks after the first positive alternate positive/negative, as real predictions may.
    """
    folder.mkdir(parents=True)
    cols: dict[str, list] = {"query_idx": [], "rank": [], "is_positive": []}
    for q, f in enumerate(first):
        for r in range(k):
            cols["query_idx"].append(q)
            cols["rank"].append(r)
            cols["is_positive"].append(f is not None and r >= f and (r - f) % 2 == 0)
    n = len(cols["rank"])
    pq.write_table(
        pa.table(
            {
                "query_idx": pa.array(cols["query_idx"], pa.int32()),
                "query_image_id": pa.array(np.array(cols["query_idx"]) + 1000, pa.int64()),
                "rank": pa.array(cols["rank"], pa.int16()),
                "database_idx": pa.array(np.arange(n) % 50, pa.int32()),
                "database_image_id": pa.array(np.arange(n) % 50, pa.int64()),
                "distance": pa.array(np.linspace(0, 1, n), pa.float32()),
                "is_positive": pa.array(cols["is_positive"], pa.bool_()),
            }
        ),
        folder / "predictions.parquet",
    )
    nq = len(first)
    recalls = {str(n): 100.0 * sum(f is not None and f < n for f in first) / nq for n in VALUES}
    protocol = {"n_queries": nq, "n_database": 50, "checkpoint_sha256": folder.name, "model": {"backbone": "x"}}
    if fingerprint is not None:
        protocol["eval_set_fingerprint"] = fingerprint
    (folder / "recalls.json").write_text(json.dumps({"recalls": {"flat": recalls}, "protocol": protocol}))
    return folder


def hand_pair(tmp_path: Path) -> tuple[Path, Path]:
    """400 queries. A: 0..299 first positive at rank 0, 300..399 none. B: 0..199 none, 200..299 at rank 0,
    300..349 at rank 4 (found at N=5), 350..399 at rank 12 (found at N=20)."""
    a = [0] * 300 + [None] * 100
    b = [None] * 200 + [0] * 100 + [4] * 50 + [12] * 50
    return write_eval(tmp_path / "a", a), write_eval(tmp_path / "b", b)


def test_first_hit_ranks_from_predictions(tmp_path):
    folder = write_eval(tmp_path / "e", [0, 2, None, 19, 7], k=20)
    assert first_hit_ranks(folder / "predictions.parquet", 5).tolist() == [0, 2, np.iinfo(np.int64).max, 19, 7]
    with pytest.raises(CompareError, match="query_idx outside"):
        first_hit_ranks(folder / "predictions.parquet", 3)


def test_compare_hand_case(tmp_path):
    a, b = hand_pair(tmp_path)
    r = compare(a, b, resamples=2000, seed=0)
    assert r["n_queries"] == 400 and r["eval_set_fingerprint"] == FP and r["index"] == "flat"
    assert r["bootstrap"]["resamples"] == 2000 and r["bootstrap"]["seed"] == 0 and r["bootstrap"]["level"] == 0.95
    assert list(r["recalls"]) == list(VALUES)
    # by hand: A finds 0..299 at every N; B finds 200..299 at N=1, also 300..349 at N=5, also 350..399 at N=20
    expected = {1: (75, 25, 200, 0), 5: (75, 37.5, 200, 50), 10: (75, 37.5, 200, 50), 20: (75, 50, 200, 100)}
    for n, (ra, rb, won, lost) in expected.items():
        row = r["recalls"][n]
        assert row["a"] == ra and row["b"] == rb and row["difference"] == pytest.approx(ra - rb)
        assert (row["won"], row["lost"]) == (won, lost)
        lo, hi = row["interval"]
        # paired normal approximation of the mean of d = found_A - found_B
        p_won, p_lost = won / 400, lost / 400
        se = 100 * math.sqrt((p_won + p_lost - (p_won - p_lost) ** 2) / 400)
        assert lo < ra - rb < hi
        assert abs(lo - (ra - rb - 1.96 * se)) <= 1.0 and abs(hi - (ra - rb + 1.96 * se)) <= 1.0
    # the same folder twice: no difference at all
    same = compare(a, a)
    assert all(
        v["difference"] == 0 and v["interval"] == [0, 0] and v["won"] == v["lost"] == 0
        for v in same["recalls"].values()
    )
    # seeded
    assert compare(a, b, resamples=500, seed=3) == compare(a, b, resamples=500, seed=3)


def test_cli_table_and_json(tmp_path):
    a, b = hand_pair(tmp_path)
    res = runner.invoke(vgtrain_app, ["compare", str(a), str(b), "--resamples", "1000", "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert "R@1" in res.output and "+50.0 [" in res.output and "200" in res.output
    res = runner.invoke(vgtrain_app, ["compare", str(a), str(b), "--json", "--resamples", "1000", "--seed", "4"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["bootstrap"]["resamples"] == 1000 and data["bootstrap"]["seed"] == 4
    assert data["recalls"]["1"]["difference"] == pytest.approx(50.0) and data["recalls"]["20"]["lost"] == 100


def one_line_error(args: list[str]) -> str:
    res = runner.invoke(vgtrain_app, ["compare", *args])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    return res.output


def test_refusals_are_one_line(tmp_path):
    a, _ = hand_pair(tmp_path)
    other = write_eval(tmp_path / "other", [0] * 400, fingerprint="0" * 64)
    assert "different eval sets" in one_line_error([str(a), str(other)])
    old = write_eval(tmp_path / "old", [0] * 400, fingerprint=None)
    out = one_line_error([str(a), str(old)])
    assert "older vgtrain" in out and "old" in out and "re-run" in out
    fewer = write_eval(tmp_path / "fewer", [0] * 399)
    assert "has 399 queries" in one_line_error([str(a), str(fewer)])
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "recalls.json").write_text("{}")
    assert "lacks predictions.parquet" in one_line_error([str(a), str(bare)])
    assert "is not a folder" in one_line_error([str(a), str(tmp_path / "nope")])
    # predictions that do not give recalls.json's numbers
    broken = write_eval(tmp_path / "broken", [0] * 400)
    saved = json.loads((broken / "recalls.json").read_text())
    saved["recalls"]["flat"]["1"] = 12.0
    (broken / "recalls.json").write_text(json.dumps(saved))
    msg = one_line_error([str(a), str(broken)])
    assert "gives R@1 100.000 but recalls.json says 12.000" in msg
    with pytest.raises(VgtrainError):  # a CompareError is a VgtrainError (one line on the CLI), not a ValueError
        compare(a, other)


# ---------------------------------------------------------------- real `vgtrain eval` outputs


@pytest.fixture(scope="module")
def evals(tiny_catalog, tmp_path_factory) -> dict[str, Path]:
    """Real eval folders: two random models on queries_v2 (written twice, under two names), one on queries_v1."""
    import warnings

    from vgdata.evalset import eval_set
    from vgtrain.model import build_model

    root = tmp_path_factory.mktemp("compare")
    v2a = eval_set(tiny_catalog, name="cmp_v2", database="database", queries="queries_v2").manifest
    v2b = eval_set(tiny_catalog, name="cmp_v2_again", database="database", queries="queries_v2").manifest
    v1 = eval_set(tiny_catalog, name="cmp_v1", database="database", queries="queries_v1").manifest
    weights = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_model("ResNet18", fc_output_dim=16)
        path = root / f"model{seed}.pth"
        torch.save(model.state_dict(), path)
        weights.append(path)
    out = {}
    for name, w, manifest in (("m0_v2", weights[0], v2a), ("m1_v2", weights[1], v2b), ("m0_v1", weights[0], v1)):
        res = runner.invoke(
            vgtrain_app,
            ["eval", "--weights", str(w), "--backbone", "ResNet18", "--eval-set", str(manifest),
             "--out", str(root / name), "--image-size", "64", "--num-workers", "0", "--device", "cpu",
             "--num-preds-to-save", "2"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        out[name] = root / name
    out["stdout"] = res.output  # the last eval's table
    return out


@pytest.mark.slow
def test_eval_writes_intervals_chance_and_fingerprint(evals):
    saved = json.loads((evals["m0_v2"] / "recalls.json").read_text())
    p = saved["protocol"]
    preds = pl.read_parquet(evals["m0_v2"] / "predictions.parquet")
    manifest = pq.read_table(p["eval_set"], columns=["role", "positives"]).to_pylist()
    counts = [len(r["positives"] or []) for r in manifest if r["role"] == "query"]
    assert p["mean_positives"] == pytest.approx(sum(counts) / len(counts))
    assert p["chance_level"] == pytest.approx(100 * sum(counts) / len(counts) / p["n_database"])
    assert len(p["eval_set_fingerprint"]) == 64
    assert saved["bootstrap"] == {
        "resamples": 2000,
        "seed": 0,
        "level": 0.95,
        "method": "percentile, queries resampled with replacement",
    }
    assert set(saved["intervals"]) == set(saved["recalls"]) == {"flat"}
    for n, value in saved["recalls"]["flat"].items():
        lo, hi = saved["intervals"]["flat"][n]
        assert 0 <= lo <= value <= hi <= 100
        found = (
            preds.filter(pl.col("rank") < int(n)).group_by("query_idx").agg(pl.col("is_positive").any())["is_positive"]
        )
        if found.all() or not found.any():
            assert lo == hi == value
    html = (evals["m0_v2"] / "report.html").read_text()
    assert 'class="ci">[' in html and "Chance level" in html and "bootstrap intervals" in html


@pytest.mark.slow
def test_same_eval_set_same_fingerprint_other_set_differs(evals):
    fp = {k: json.loads((v / "recalls.json").read_text())["protocol"]["eval_set_fingerprint"]
          for k, v in evals.items() if isinstance(v, Path)}  # fmt: skip
    assert fp["m0_v2"] == fp["m1_v2"]  # two manifest files of the same eval set
    assert fp["m0_v1"] != fp["m0_v2"]


@pytest.mark.slow
def test_compare_real_evals(evals):
    res = runner.invoke(vgtrain_app, ["compare", str(evals["m0_v2"]), str(evals["m1_v2"]), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    a = json.loads((evals["m0_v2"] / "recalls.json").read_text())
    b = json.loads((evals["m1_v2"] / "recalls.json").read_text())
    assert r["n_queries"] == a["protocol"]["n_queries"]
    for n, row in r["recalls"].items():
        assert row["a"] == pytest.approx(a["recalls"]["flat"][n]) and row["b"] == pytest.approx(b["recalls"]["flat"][n])
        assert row["difference"] == pytest.approx(row["a"] - row["b"])
        assert row["difference"] == pytest.approx(100 * (row["won"] - row["lost"]) / r["n_queries"])
        lo, hi = row["interval"]
        assert lo <= row["difference"] <= hi
    res = runner.invoke(vgtrain_app, ["compare", str(evals["m0_v2"]), str(evals["m1_v2"])])
    assert res.exit_code == 0 and "won" in res.output
    out = one_line_error([str(evals["m0_v2"]), str(evals["m0_v1"])])
    assert "different eval sets" in out


@pytest.mark.slow
def test_eval_table_shows_intervals_and_chance(evals):
    text = evals["stdout"]
    assert "chance level" in text and "positives per query" in text
    assert "bootstrap interval" in text and " [" in text
