"""vgtrain eval: recall on known answers, predictions consistent with recalls, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from cli import vgtrain_app
from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgtrain import knn
from vgtrain.eval import EvalConfig, run_eval
from vgtrain.fit import FitConfig, fit
from vgtrain.recall import recalls


def test_recalls_on_hand_made_descriptors():
    # database on a line; query 0 is nearest db 0 (a positive); query 1's positive is its 2nd neighbour;
    # query 2 has no positive at all (it stays in the denominator).
    db = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    q = np.array([[1, 0.01], [0.92, 0.09], [0, 0.99]], dtype=np.float32)
    positives = [np.array([0]), np.array([0]), np.array([], dtype=np.int64)]
    _, idx = knn.search(db, q, 5)
    assert idx[:, 0].tolist() == [0, 1, 2] and idx[1, 1] == 0
    r = recalls(idx, positives, (1, 2, 5))
    assert r == pytest.approx({1: 100 / 3, 2: 200 / 3, 5: 200 / 3})
    with pytest.MonkeyPatch.context() as mp:  # the torch fallback gives the same neighbours
        mp.setitem(sys.modules, "faiss", None)
        assert knn._faiss() is None
        _, idx_torch = knn.search(db, q, 5)
    assert np.array_equal(idx_torch, idx)


@pytest.fixture(scope="module")
def run(tiny_catalog, tmp_path_factory) -> tuple[Path, str]:
    g = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2))
    v = eval_set(tiny_catalog, name="v2", database="database", queries="queries_v2")
    out = tmp_path_factory.mktemp("evalrun") / "run"
    fit(
        FitConfig(groups=g.manifest, val=v.manifest, out=str(out), image_size=64, batch_size=8, epochs_num=1,
                  iterations_per_epoch=3, groups_num=1, num_workers=0, device="cpu", fc_output_dim=32,
                  val_image_size=64, infer_batch_size=8)
    )  # fmt: skip
    return out, v.manifest


@pytest.mark.slow
def test_predictions_consistent_with_recalls(run, tiny_catalog, tmp_path):
    out, _ = run
    # the fixture's v2 with two more radii: same queries, database and primary positives
    radii = [25.0, 10.0, 50.0]
    manifest = eval_set(tiny_catalog, name="v2t", database="database", queries="queries_v2", threshold=radii).manifest
    report = run_eval(
        EvalConfig(weights=str(out), eval_set=manifest, out=str(tmp_path / "e"), image_size=64, num_workers=0)
    )
    preds = pl.read_parquet(tmp_path / "e" / "predictions.parquet")
    saved = json.loads((tmp_path / "e" / "recalls.json").read_text())
    n_q = saved["protocol"]["n_queries"]
    assert n_q == 4 and len(preds) == n_q * min(20, saved["protocol"]["n_database"])
    for n, value in saved["recalls"]["flat"].items():
        found = (
            preds.filter(pl.col("rank") < int(n)).group_by("query_idx").agg(pl.col("is_positive").any())["is_positive"]
        )
        assert value == pytest.approx(100 * found.sum() / n_q)
    assert report["protocol"]["model"]["fc_output_dim"] == 32 and saved["protocol"]["threshold_m"] == 25.0
    assert (tmp_path / "e" / "report.html").is_file()
    # one row per radius from the same predictions; the primary one is the old `recalls`
    by = saved["recalls_by_threshold"]
    assert list(by) == ["10", "25", "50"] and by["25"] == saved["recalls"]["flat"]
    table = pl.read_parquet(manifest).filter(pl.col("role") == "query").sort("idx")
    ranked = preds.sort("query_idx", "rank")
    for t in radii:
        lists = table[f"positives_{int(t)}m"].to_list()
        counts = saved["protocol"]["positives_by_threshold"][f"{int(t)}"]
        assert counts["queries_without_positives"] == sum(1 for p in lists if not p)
        for n, value in by[f"{int(t)}"].items():
            top = ranked.filter(pl.col("rank") < int(n)).group_by("query_idx").agg(pl.col("database_idx"))
            found = sum(
                bool(set(row["database_idx"]) & set(lists[row["query_idx"]])) for row in top.iter_rows(named=True)
            )
            assert value == pytest.approx(100 * found / n_q), (t, n)
    assert "Recall@N (%) per threshold" in (tmp_path / "e" / "report.html").read_text()


@pytest.mark.slow
def test_cosplace_state_dict_and_init_weights(run, tmp_path):
    out, manifest = run
    sd = torch.load(out / "last.pt", weights_only=True)
    plain = tmp_path / "cosplace.pth"
    torch.save(sd, plain)
    r = run_eval(EvalConfig(weights=str(plain), eval_set=manifest, out=str(tmp_path / "p"), backbone="ResNet18",
                            image_size=64, num_workers=0))  # fmt: skip
    ours = run_eval(
        EvalConfig(
            weights=str(out / "last.pt"), eval_set=manifest, out=str(tmp_path / "o"), image_size=64, num_workers=0
        )
    )
    assert r["recalls"] == ours["recalls"] and r["protocol"]["model"]["fc_output_dim"] == 32
    init = run_eval(
        EvalConfig(
            weights=str(out / "init.pt"), eval_set=manifest, out=str(tmp_path / "i"), image_size=64, num_workers=0
        )
    )
    assert init["protocol"]["checkpoint_sha256"] != ours["protocol"]["checkpoint_sha256"]


@pytest.mark.slow
def test_bad_inputs_are_one_line(run, tmp_path):
    out, manifest = run
    runner = CliRunner()
    args = ["eval", "--eval-set", manifest, "--out", str(tmp_path / "x"), "--num-workers", "0"]
    wrong = tmp_path / "wrong.pth"
    sd = torch.load(out / "last.pt", weights_only=True)
    sd["aggregation.9.weight"] = sd.pop("aggregation.3.weight")
    torch.save(sd, wrong)
    res = runner.invoke(vgtrain_app, [*args, "--weights", str(wrong), "--backbone", "ResNet18"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    res = runner.invoke(vgtrain_app, [*args, "--weights", str(out / "last.pt"), "--index", "hnsw"])
    assert res.exit_code == 1 and "--index must be flat, ivfpq or both" in res.output
    bad = dict(torch.load(out / "last.pt", weights_only=True))
    bad.pop("aggregation.1.p")
    torch.save(bad, wrong)
    res = runner.invoke(vgtrain_app, [*args, "--weights", str(wrong), "--backbone", "ResNet18"])
    assert res.exit_code == 1 and "missing" in res.output and "aggregation.1.p" in res.output
    res = runner.invoke(vgtrain_app, [*args, "--weights", str(tmp_path / "nope.pt")])
    assert res.exit_code == 1 and "weights not found" in res.output


@pytest.mark.slow
def test_index_both_reports_the_recall_ivfpq_loses(run, tmp_path):
    out, manifest = run
    runner = CliRunner()
    res = runner.invoke(
        vgtrain_app,
        ["eval", "--weights", str(out), "--eval-set", manifest, "--out", str(tmp_path / "b"), "--num-workers", "0",
         "--image-size", "64", "--index", "both", "--pq-m", "8", "--pq-nbits", "4", "--nlist", "2", "--nprobe", "2", "--rerank", "100000"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "flat" in res.output and "ivfpq" in res.output
    saved = json.loads((tmp_path / "b" / "recalls.json").read_text())
    assert set(saved["recalls"]) == {"flat", "ivfpq"}
    n_db = saved["protocol"]["n_database"]
    assert saved["protocol"]["ivfpq"] == {
        "nlist": 2,
        "m": 8,
        "nbits": 4,
        "nprobe": 2,
        "train_size": n_db,
        "rerank": 100000,
    }
    # nprobe = nlist and rerank > n_db: every database image is re-scored exactly, so nothing is lost
    assert saved["ivfpq_recall_lost"] == dict.fromkeys(saved["recalls"]["flat"], 0.0)
    for n, lost in saved["ivfpq_recall_lost"].items():
        assert lost == pytest.approx(saved["recalls"]["flat"][n] - saved["recalls"]["ivfpq"][n])
    html = (tmp_path / "b" / "report.html").read_text()
    assert "recall lost (flat &minus; ivfpq)" in html and "flat (exact) index" in html
    # IVF-PQ that cannot be trained is a one-line error
    res = runner.invoke(
        vgtrain_app,
        ["eval", "--weights", str(out), "--eval-set", manifest, "--out", str(tmp_path / "c"), "--num-workers", "0",
         "--image-size", "64", "--index", "ivfpq", "--pq-m", "7"],
    )  # fmt: skip
    assert res.exit_code == 1 and "PQ m=7 must divide D=32" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_several_eval_sets_share_the_database_descriptors(run, tiny_catalog, tmp_path):
    # v1 and v2 against the same database: one call, two folders, the database embedded once, and
    # every recall equal to what each eval set gives on its own.
    out, v2 = run
    v1 = eval_set(tiny_catalog, name="v1", database="database", queries="queries_v1").manifest
    res = CliRunner().invoke(
        vgtrain_app,
        ["eval", "--weights", str(out), "--eval-set", v1, "--eval-set", v2, "--out", str(tmp_path / "both"),
         "--image-size", "64", "--num-workers", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "both" / "v1" / "recalls.json").read_text())
    second = json.loads((tmp_path / "both" / "v2" / "recalls.json").read_text())
    assert first["protocol"]["timings"]["database_descriptors_reused"] is False
    assert second["protocol"]["timings"]["database_descriptors_reused"] is True
    for manifest, together in ((v1, first), (v2, second)):
        alone = run_eval(
            EvalConfig(weights=str(out), eval_set=manifest, out=str(tmp_path / "alone"), image_size=64, num_workers=0)
        )
        assert together["recalls"] == json.loads(json.dumps(alone["recalls"]))
        assert together["protocol"]["eval_set_fingerprint"] == alone["protocol"]["eval_set_fingerprint"]
    clash = CliRunner().invoke(
        vgtrain_app, ["eval", "--weights", str(out), "--eval-set", v2, "--eval-set", v2, "--out", str(tmp_path / "x")]
    )
    assert clash.exit_code == 1 and "share a name" in clash.output
