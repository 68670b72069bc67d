"""``vgtrain predictions RUN_DIR --format msls --out FILE``: a ``vgtrain eval`` run's predictions for other tools.

``msls``: the prediction file of Mapillary SLS's ``evaluate.py`` (FORMATS.md section 3.3), read there with
``np.loadtxt(f, dtype=str, ndmin=2)``: ``#`` comment lines first (eval set, model, index), then one line
per query, ``query_key db_key1 ... db_keyK``, best first, separated by single spaces. A key is the file
stem of the image's path (no folder, no extension): for an imported MSLS set, the Mapillary key. Every
line has the same K (default: every prediction the run saved, i.e. ``min(20, N_database)``). Only
image-to-image predictions are written (MSLS's sequence tasks join keys with commas).

Inputs (pyarrow / numpy only): ``RUN_DIR/recalls.json`` (its ``protocol.eval_set`` names the eval
manifest, or pass ``eval_set``) and ``RUN_DIR/predictions.parquet`` (``query_idx``, ``rank``,
``database_idx``, ``query_image_id``, ``database_image_id``: :func:`vgtrain.eval._predictions_table`; the flat
index's when the run searched both). The manifest must be the one evaluated: its
:func:`vgtrain.manifest.eval_set_fingerprint` must equal the run's, and the image ids must match.
Refused with one line (:class:`PredictionsError`): a missing file, another eval set, a K the run did
not save, a key holding whitespace, a comma or '#' (loadtxt would split or cut the line there), or two
queries (or two predicted database images) with one key.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vgtrain.errors import VgtrainError
from vgtrain.fsio import atomic_write_text
from vgtrain.manifest import eval_set_fingerprint
from vgtrain.manifest_file import EVAL_COLUMNS, ManifestFile

FORMATS = ("msls",)
"""``vgtrain predictions --format``."""
_BAD_KEY = re.compile(r"[\s,#]")
_PRED_COLUMNS = ("query_idx", "rank", "database_idx", "query_image_id", "database_image_id")


class PredictionsError(VgtrainError):
    """A user-facing error of ``vgtrain predictions`` (one line)."""


def write_predictions(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str = "msls",
    k: int | None = None,
    eval_set: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write ``out`` from the ``vgtrain eval`` folder ``run_dir``; returns ``{out, format, n_queries, k, index}``.

    ``k``: predictions per query (default: all the run saved); ``eval_set``: the eval manifest when it
    has moved since the run (default: ``recalls.json``'s ``protocol.eval_set``).
    """
    if fmt not in FORMATS:
        raise PredictionsError(f"unknown predictions format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise PredictionsError(f"--k must be a positive integer, got {k!r}")
    run = Path(run_dir)
    protocol = _protocol(run)
    manifest = eval_set or protocol.get("eval_set")
    if not manifest:
        raise PredictionsError(f"{run / 'recalls.json'} does not name its eval manifest; pass --eval-set FILE")
    db_keys, q_keys, db_ids, q_ids = _manifest_keys(Path(manifest), protocol.get("eval_set_fingerprint"))
    table = _read_predictions(run)
    nq = len(q_keys)
    order = np.lexsort((table["rank"], table["query_idx"]))
    qi, dbi = table["query_idx"][order], table["database_idx"][order]
    per_query = np.bincount(qi, minlength=nq) if qi.size and qi.min() >= 0 and qi.max() < nq else None
    if per_query is None or per_query.size != nq or per_query.min() != per_query.max() or per_query[0] == 0:
        raise PredictionsError(
            f"{run / 'predictions.parquet'} does not hold the same number of predictions for each of the {nq} "
            "queries of its eval set; re-run `vgtrain eval`"
        )
    saved = int(per_query[0])
    if dbi.min() < 0 or dbi.max() >= len(db_keys):
        raise PredictionsError(f"{run / 'predictions.parquet'} predicts images outside the database; re-run it")
    if not (
        np.array_equal(table["query_image_id"][order], q_ids[qi])
        and np.array_equal(table["database_image_id"][order], db_ids[dbi])
    ):
        raise PredictionsError(
            f"{run / 'predictions.parquet'} and eval manifest {manifest} name other images; pass the manifest "
            "that was evaluated (--eval-set)"
        )
    k = saved if k is None else k
    if k > saved:
        raise PredictionsError(f"--k {k}: the run saved {saved} predictions per query; choose --k <= {saved}")
    top = dbi.reshape(nq, saved)[:, :k]
    _check_keys(q_keys, "query")
    _check_keys([db_keys[j] for j in np.unique(top)], "database")
    index = "flat" if protocol.get("index") in ("flat", "both", None) else str(protocol.get("index"))
    header = [
        "vgtrain predictions in the Mapillary SLS evaluate.py format: query key, then the top "
        f"{k} database keys, best first",
        f"eval set: {Path(manifest).resolve()} (fingerprint {protocol.get('eval_set_fingerprint')}); database "
        f"{protocol.get('database')}, queries {protocol.get('queries')}, threshold {protocol.get('threshold_m')} m",
        f"model: {_one_line(protocol.get('model'))}; checkpoint sha256 {protocol.get('checkpoint_sha256')}; "
        f"index {index}",
    ]
    lines = [f"# {_one_line(h)}" for h in header]
    lines += [" ".join([q_keys[i], *(db_keys[j] for j in top[i])]) for i in range(nq)]
    atomic_write_text(out, "\n".join(lines) + "\n")
    return {"out": str(out), "format": fmt, "n_queries": nq, "k": k, "index": index}


def _one_line(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return " ".join(str(text).split())


def _protocol(run: Path) -> dict[str, Any]:
    path = run / "recalls.json"
    if not path.is_file() or not (run / "predictions.parquet").is_file():
        raise PredictionsError(f"{run} is not a `vgtrain eval` output folder (recalls.json, predictions.parquet)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PredictionsError(f"{path} cannot be read ({e}); re-run `vgtrain eval`") from e
    protocol = report.get("protocol") if isinstance(report, dict) else None
    if not isinstance(protocol, dict):
        raise PredictionsError(f"{path} has no protocol; re-run `vgtrain eval`")
    return protocol


def _manifest_keys(path: Path, fingerprint: str | None) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Database and query keys (file stems) and image ids in idx order; checks the eval set's fingerprint."""
    mf = ManifestFile.open(path, "eval", "vgdata eval-set", EVAL_COLUMNS)
    table = mf.pf.read(columns=list(EVAL_COLUMNS))
    parts = []
    for role in ("database", "query"):
        part = table.filter(pc.equal(table["role"], role))
        parts.append(part.take(pc.sort_indices(part["idx"])))
    if fingerprint and eval_set_fingerprint(pa.concat_tables(parts), mf.params.get("threshold")) != fingerprint:
        raise PredictionsError(
            f"eval manifest {path} is not the eval set this run evaluated (fingerprints differ); pass the evaluated "
            "one with --eval-set, or re-run `vgtrain eval`"
        )
    db, qs = parts
    keys = [[PurePosixPath(p).stem for p in part["path"].to_pylist()] for part in parts]
    return keys[0], keys[1], db["image_id"].to_numpy().astype(np.int64), qs["image_id"].to_numpy().astype(np.int64)


def _read_predictions(run: Path) -> dict[str, np.ndarray]:
    path = run / "predictions.parquet"
    try:
        table = pq.read_table(path, columns=list(_PRED_COLUMNS))
    except (OSError, pa.ArrowException, KeyError) as e:
        raise PredictionsError(f"{path} cannot be read ({e}); re-run `vgtrain eval`") from e
    return {c: table[c].to_numpy().astype(np.int64) for c in _PRED_COLUMNS}


def _check_keys(keys: list[str], role: str) -> None:
    for key in keys:
        if not key or _BAD_KEY.search(key):
            raise PredictionsError(
                f"{role} key {key!r} is empty or holds whitespace, a comma or '#', which the MSLS prediction file "
                "cannot carry (evaluate.py splits lines on whitespace and keys on commas); rename those images"
            )
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise PredictionsError(
                f"two {role} images share the key {key!r} (file name without folder and extension); the MSLS "
                "file would be ambiguous"
            )
        seen.add(key)
