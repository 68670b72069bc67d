"""``vgtrain predictions --format msls``: MSLS evaluate.py's prediction file from a ``vgtrain eval`` folder."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgtrain_app
from vgdata.evalset import eval_set
from vgtrain.eval import _predictions_table
from vgtrain.manifest import EvalManifest
from vgtrain.predictions_out import PredictionsError, write_predictions
from vgtrain.stats import is_positive

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:Input line 1 contained no data")  # numpy's note on the '#' lines


def stems(manifest, role: str) -> list[str]:
    """File stems of ``role``'s paths in idx order, read here with pyarrow."""
    rows = [r for r in pq.read_table(manifest, columns=["role", "idx", "path"]).to_pylist() if r["role"] == role]
    return [PurePosixPath(r["path"]).stem for r in sorted(rows, key=lambda r: r["idx"])]


@pytest.fixture(scope="module")
def run(tiny_catalog, tmp_path_factory):
    """An eval folder made as `vgtrain eval` makes it, with a hand-picked ranking instead of a model's."""
    manifest = eval_set(tiny_catalog, name="pred_v2", database="database", queries="queries_v2").manifest
    m = EvalManifest.read(manifest)
    rng = np.random.default_rng(0)
    k = 20
    idx = np.stack([rng.permutation(len(m.database))[:k] for _ in m.queries])  # (Q, k), best first
    dist = np.sort(rng.random(idx.shape).astype(np.float32), axis=1)
    out = tmp_path_factory.mktemp("predrun")
    pq.write_table(_predictions_table(dist, idx, is_positive(idx, m.positives), m), out / "predictions.parquet")
    protocol = {"eval_set": str(manifest), "eval_set_fingerprint": m.set_fingerprint, "index": "flat",
                "database": "database", "queries": "queries_v2", "threshold_m": 25.0,
                "model": {"backbone": "ResNet18"}, "checkpoint_sha256": "ab" * 32}  # fmt: skip
    (out / "recalls.json").write_text(json.dumps({"recalls": {}, "protocol": protocol}))
    return out, manifest, idx


def test_msls_file_reads_back_with_loadtxt(run, tmp_path):
    folder, manifest, idx = run
    res = write_predictions(folder, tmp_path / "pred.txt", k=5)
    table = np.loadtxt(tmp_path / "pred.txt", dtype=str, ndmin=2)  # as mapillary_sls evaluate.py reads it
    q_keys, db_keys = stems(manifest, "query"), stems(manifest, "database")
    assert table.shape == (len(q_keys), 6) and res["k"] == 5 and res["n_queries"] == len(q_keys)
    for i, row in enumerate(table):
        assert row[0] == q_keys[i] and list(row[1:]) == [db_keys[j] for j in idx[i, :5]]
    assert all("/" not in key and not key.endswith(".jpg") for key in table.ravel())
    text = (tmp_path / "pred.txt").read_text()
    assert text.startswith("# ") and "ResNet18" in text and str(manifest.resolve()) in text
    write_predictions(folder, tmp_path / "all.txt")  # default K: everything the run saved
    assert np.loadtxt(tmp_path / "all.txt", dtype=str, ndmin=2).shape == (len(q_keys), 21)


def test_refusals_are_one_line(run, tiny_catalog, tmp_path):
    folder, manifest, _ = run
    with pytest.raises(PredictionsError, match="saved 20 predictions"):
        write_predictions(folder, tmp_path / "p.txt", k=21)
    with pytest.raises(PredictionsError, match="unknown predictions format"):
        write_predictions(folder, tmp_path / "p.txt", fmt="hloc")
    with pytest.raises(PredictionsError, match="not a `vgtrain eval` output folder"):
        write_predictions(tmp_path, tmp_path / "p.txt")
    other = eval_set(tiny_catalog, name="pred_v1", database="database", queries="queries_v1").manifest
    with pytest.raises(PredictionsError, match="not the eval set this run evaluated"):
        write_predictions(folder, tmp_path / "p.txt", eval_set=other)
    res = runner.invoke(vgtrain_app, ["predictions", str(folder), "--out", str(tmp_path / "p.txt"), "--k", "0"])
    assert res.exit_code == 1 and "--k must be a positive integer" in res.output
    assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(vgtrain_app, ["predictions", str(folder), "--out", str(tmp_path / "p.txt"), "--k", "3"])
    assert res.exit_code == 0 and "x 3 predictions" in res.output, res.output


def test_keys_with_whitespace_or_commas_are_refused(run, tmp_path):
    from vgtrain.predictions_out import _check_keys

    _check_keys(["Ld3Hk2qNy0_4e-rAbc1234", "@0551196.67@4180894.20@10@S@x@@.jpg"], "query")
    for bad in ("two words", "k1,k2", "tab\tkey", "#hash", ""):
        with pytest.raises(PredictionsError, match="whitespace, a comma"):
            _check_keys([bad], "query")
    with pytest.raises(PredictionsError, match="share the key"):
        _check_keys(["a", "a"], "database")


@pytest.mark.slow
def test_end_to_end_from_vgtrain_eval(tiny_catalog, tmp_path):
    manifest = eval_set(tiny_catalog, name="pred_e2e", database="database", queries="queries_v2").manifest
    res = runner.invoke(
        vgtrain_app,
        ["eval", "--weights", "random", "--backbone", "ResNet18", "--fc-output-dim", "16", "--eval-set",
         str(manifest), "--out", str(tmp_path / "e"), "--image-size", "64", "--num-workers", "0", "--device", "cpu",
         "--num-preds-to-save", "0"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(vgtrain_app, ["predictions", str(tmp_path / "e"), "--out", str(tmp_path / "p.txt")])
    assert res.exit_code == 0, res.output
    table = np.loadtxt(tmp_path / "p.txt", dtype=str, ndmin=2)
    preds = pq.read_table(tmp_path / "e" / "predictions.parquet").to_pylist()
    q_keys, db_keys = stems(manifest, "query"), stems(manifest, "database")
    assert table.shape == (len(q_keys), 21)
    for p in preds:
        assert table[p["query_idx"], 0] == q_keys[p["query_idx"]]
        assert table[p["query_idx"], 1 + p["rank"]] == db_keys[p["database_idx"]]
