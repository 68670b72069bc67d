"""``vgtrain compare``: two evaluations of the same eval set, query by query.

Each argument is an output folder of ``vgtrain eval`` (``recalls.json`` + ``predictions.parquet``).
Both must come from the same eval set (equal ``protocol.eval_set_fingerprint``, which also means
the same query at every ``query_idx``); anything else is refused with a :class:`CompareError`.

Per query, the rank of its first positive is read from ``predictions.parquet`` (``is_positive``
by ``rank`` per ``query_idx``; a query without a positive in its top k is a miss at every N).
The predictions are those of the flat index when an eval searched both flat and IVF-PQ, so the
recalls compared are ``recalls.json``'s ``flat`` ones then (else its only index); they are checked
against ``recalls.json``. Per N: both recalls, the difference A - B in points with its paired
bootstrap interval (:func:`vgtrain.stats.paired_bootstrap`: the same resampled queries for A and
B), and the queries won (A found at N, B not) and lost (B found, A not).
"""

from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

from vgtrain.errors import VgtrainError
from vgtrain.stats import LEVEL, MISS, RESAMPLES, SEED, hits_from_first_rank, paired_bootstrap

RECALLS_FILE = "recalls.json"
PREDICTIONS_FILE = "predictions.parquet"
METHOD = "paired percentile; queries resampled with replacement, the same queries for A and B"
_TOLERANCE = 1e-6
"""Percent: how far a recall from predictions.parquet may be from recalls.json's."""


class CompareError(VgtrainError):
    """A user-facing error of ``vgtrain compare`` (one line)."""


def compare(
    a: str | os.PathLike, b: str | os.PathLike, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> dict[str, Any]:
    """Compare eval folders ``a`` and ``b`` (outputs of ``vgtrain eval`` on the same eval set).

    Returns ``{"a": {...}, "b": {...}, "eval_set_fingerprint", "n_queries", "index",
    "bootstrap": {"resamples", "seed", "level", "method"}, "recalls": {N: {"a", "b",
    "difference", "interval": [lo, hi], "won", "lost"}}}``: recalls and differences in percent
    (points), ``a``/``b`` describe each folder (folder, model, checkpoint). Raises
    :class:`CompareError` when a folder lacks the files, was written by a vgtrain without eval-set
    fingerprints, or the two come from different eval sets or have different query counts.
    """
    if isinstance(resamples, bool) or not isinstance(resamples, numbers.Integral) or resamples < 1:
        raise CompareError(f"--resamples must be a positive integer, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise CompareError(f"--seed must be an integer >= 0, got {seed!r}")
    reports = {"A": _read_report(Path(a)), "B": _read_report(Path(b))}
    folders = {"A": Path(a), "B": Path(b)}
    prints = {}
    for side, report in reports.items():
        fp = report["protocol"].get("eval_set_fingerprint")
        if not fp:
            raise CompareError(
                f"{folders[side]} was written by an older vgtrain (its recalls.json has no eval_set_fingerprint); "
                "re-run `vgtrain eval` for it"
            )
        prints[side] = fp
    if prints["A"] != prints["B"]:
        raise CompareError(
            f"{folders['A']} and {folders['B']} evaluate different eval sets (fingerprints {prints['A'][:12]} and "
            f"{prints['B'][:12]}); compare evaluations of the same eval set"
        )
    n_queries = {side: _n_queries(folders[side], r) for side, r in reports.items()}
    if n_queries["A"] != n_queries["B"]:
        raise CompareError(
            f"{folders['A']} has {n_queries['A']} queries but {folders['B']} has {n_queries['B']} queries; "
            "compare evaluations of the same eval set"
        )
    nq = n_queries["A"]
    kinds = {side: _kind(folders[side], r) for side, r in reports.items()}
    recalled = {side: _recall_values(reports[side]["recalls"][kinds[side]]) for side in reports}
    values = sorted(set(recalled["A"]) & set(recalled["B"]))
    if not values:
        raise CompareError(f"{folders['A']} and {folders['B']} share no recall@N to compare")
    found = {}
    for side in reports:
        first = first_hit_ranks(folders[side] / PREDICTIONS_FILE, nq)
        found[side] = hits_from_first_rank(first, values)
        for j, n in enumerate(values):
            derived = 100.0 * found[side][:, j].sum() / max(nq, 1)
            if abs(derived - recalled[side][n]) > _TOLERANCE:
                raise CompareError(
                    f"{folders[side]}: {PREDICTIONS_FILE} gives R@{n} {derived:.3f} but {RECALLS_FILE} "
                    f"says {recalled[side][n]:.3f}; re-run `vgtrain eval` for it"
                )
    rows: dict[int, dict[str, Any]] = {}
    for j, n in enumerate(values):
        paired = paired_bootstrap(found["A"][:, j], found["B"][:, j], resamples=resamples, seed=seed, level=level)
        rows[n] = {
            "a": recalled["A"][n],
            "b": recalled["B"][n],
            "difference": paired["difference"],
            "interval": paired["interval"],
            "won": paired["won"],
            "lost": paired["lost"],
        }
    return {
        "a": _describe(folders["A"], reports["A"], kinds["A"]),
        "b": _describe(folders["B"], reports["B"], kinds["B"]),
        "eval_set_fingerprint": prints["A"],
        "n_queries": nq,
        "index": kinds["A"] if kinds["A"] == kinds["B"] else f"{kinds['A']} vs {kinds['B']}",
        "bootstrap": {"resamples": int(resamples), "seed": seed, "level": level, "method": METHOD},
        "recalls": rows,
    }


def first_hit_ranks(path: str | os.PathLike, n_queries: int) -> np.ndarray:
    """int64 (n_queries,): per query, the 0-based rank of its first positive in a predictions.parquet.

    :data:`vgtrain.stats.MISS` for a query without a positive among its predictions (or without
    predictions). Raises :class:`CompareError` for an unreadable file, missing columns or a
    ``query_idx`` outside ``0..n_queries - 1``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    columns = ["query_idx", "rank", "is_positive"]
    try:
        names = pq.ParquetFile(path).schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise CompareError(f"{path} lacks columns {', '.join(missing)}; re-run `vgtrain eval`")
        t = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as e:
        raise CompareError(f"{path} is not a readable Parquet file ({e}); re-run `vgtrain eval`") from None
    if any(t[c].null_count for c in columns):
        raise CompareError(f"{path} has nulls in {', '.join(c for c in columns if t[c].null_count)}")
    q = t["query_idx"].to_numpy().astype(np.int64)
    rank = t["rank"].to_numpy().astype(np.int64)
    positive = t["is_positive"].to_numpy(zero_copy_only=False).astype(bool)
    if q.size and (q.min() < 0 or q.max() >= n_queries):
        raise CompareError(f"{path} has query_idx outside 0..{n_queries - 1}; re-run `vgtrain eval`")
    first = np.full(n_queries, MISS, dtype=np.int64)
    np.minimum.at(first, q[positive], rank[positive])
    return first


def _read_report(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise CompareError(f"{folder} is not a folder; pass output folders of `vgtrain eval`")
    lacking = [f for f in (RECALLS_FILE, PREDICTIONS_FILE) if not (folder / f).is_file()]
    if lacking:
        raise CompareError(f"{folder} lacks {' and '.join(lacking)}; pass output folders of `vgtrain eval`")
    try:
        report = json.loads((folder / RECALLS_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompareError(f"{folder / RECALLS_FILE} is not readable JSON ({e}); re-run `vgtrain eval`") from None
    if (
        not isinstance(report, dict)
        or not isinstance(report.get("protocol"), dict)
        or not isinstance(report.get("recalls"), dict)
        or not report["recalls"]
    ):
        raise CompareError(f"{folder / RECALLS_FILE} has no recalls or protocol; re-run `vgtrain eval`")
    return report


def _n_queries(folder: Path, report: dict[str, Any]) -> int:
    n = report["protocol"].get("n_queries")
    if not isinstance(n, int) or n < 0:
        raise CompareError(f"{folder / RECALLS_FILE} has no protocol.n_queries; re-run `vgtrain eval`")
    return n


def _kind(folder: Path, report: dict[str, Any]) -> str:
    """The index whose results predictions.parquet holds: flat when searched, else the only one."""
    kinds = list(report["recalls"])
    if "flat" in kinds:
        return "flat"
    if len(kinds) == 1:
        return kinds[0]
    raise CompareError(f"{folder / RECALLS_FILE} has recalls of {', '.join(kinds)} but none of the flat index")


def _recall_values(recalls: dict[str, Any]) -> dict[int, float]:
    out = {}
    for n, v in recalls.items():
        try:
            out[int(n)] = float(v)
        except (TypeError, ValueError):
            raise CompareError(f"unreadable recall@{n}: {v!r}; re-run `vgtrain eval`") from None
    return out


def _describe(folder: Path, report: dict[str, Any], kind: str) -> dict[str, Any]:
    p = report["protocol"]
    return {
        "folder": str(folder),
        "model": p.get("model"),
        "checkpoint": p.get("checkpoint"),
        "checkpoint_sha256": p.get("checkpoint_sha256"),
        "index": kind,
        "chance_level": p.get("chance_level"),
    }
