"""The table of a sweep (``runs/sweep.py``): recall per setting over seeds, intervals, paired differences.

A sweep trains every setting with the same seeds and evaluates each run on the same eval sets;
the eval of setting S, seed k, eval set Q is the ``vgtrain eval`` folder
``RUN_DIR/<S>/seed<k>/eval/<Q>/`` (``recalls.json`` + ``predictions.parquet``). Per setting and
eval set the table holds, for N in :data:`RECALL_AT`:

* ``r{N}``: recall@N in percent, the mean over seeds of each seed's ``recalls.json`` value (the
  per-seed values are kept in ``r{N}_per_seed``); the per-query hits read from
  ``predictions.parquet`` (:func:`vgtrain.compare.first_hit_ranks`) must give the same numbers;
* ``r{N}_lo``, ``r{N}_hi``: its bootstrap percentile interval over queries. The queries are
  resampled with replacement and the same resample is used for every seed, so the statistic
  resampled is the per-query mean hit over seeds (0, 1/S, ..., 1);
* ``d{N}`` with ``d{N}_lo``, ``d{N}_hi``: the paired difference setting - baseline (points),
  averaged over seeds, with its paired bootstrap interval: the same resampled queries for the
  setting and the baseline (and for every seed). A setting against itself is exactly 0, [0, 0].

As in :mod:`vgtrain.stats`, resampling Q queries with replacement is drawn as counts: a per-query
statistic that takes a few distinct values v_j with frequencies p_j is resampled by drawing the
counts of each value ~ Multinomial(Q, p), the same distribution index resampling gives, at a cost
independent of Q. Pure pyarrow/numpy/matplotlib (no vgdata).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vgtrain.compare import PREDICTIONS_FILE, RECALLS_FILE, first_hit_ranks
from vgtrain.errors import VgtrainError
from vgtrain.fsio import atomic_path, atomic_write_text
from vgtrain.stats import LEVEL, RESAMPLES, SEED, hits_from_first_rank

RECALL_AT = (1, 5)
"""The recalls the table reports."""
_TOLERANCE = 1e-6
"""Percent: how far a recall from predictions.parquet may be from recalls.json's."""


class SweepTableError(VgtrainError):
    """A user-facing error of the sweep table (one line)."""


def eval_folder(run_dir: str | os.PathLike, setting: str, seed: int, eval_set: str) -> Path:
    """``RUN_DIR/<setting>/seed<seed>/eval/<eval_set>``: one ``vgtrain eval`` output folder."""
    return Path(run_dir) / setting / f"seed{seed}" / "eval" / eval_set


def resampled_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """float (resamples,): the mean of ``values`` (one per query) over queries resampled with replacement."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be one per query (1-D), got shape {v.shape}")
    if v.size == 0:
        return np.zeros(resamples)
    levels, counts = np.unique(v, return_counts=True)
    draws = np.random.default_rng(seed).multinomial(v.size, counts / v.size, size=resamples)
    return draws @ levels / v.size


def interval(stats: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``stats`` (rounded to 10 decimals, as vgtrain.stats does)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level!r}")
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(np.round(lo, 10)), float(np.round(hi, 10))


def seed_mean_interval(
    hits: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> tuple[float, float]:
    """(lo, hi) in percent for recall averaged over seeds; ``hits``: bool (seeds, queries), one resample for all seeds."""
    h = np.asarray(hits, dtype=np.float64)
    return interval(100.0 * resampled_means(h.mean(axis=0), resamples, seed), level)


def paired_seed_difference(
    hits_a: np.ndarray, hits_b: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> dict[str, Any]:
    """A - B in points, averaged over seeds, with its paired bootstrap interval.

    ``hits_a``/``hits_b``: bool (seeds, queries), the same seeds and queries in the same order.
    The queries are resampled once per draw, the same for A, B and every seed. Returns
    ``{"difference", "interval": [lo, hi]}``; A equal to B gives exactly 0 and [0, 0].
    """
    a, b = np.asarray(hits_a, dtype=np.float64), np.asarray(hits_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"hits_a and hits_b must cover the same seeds and queries, got {a.shape} and {b.shape}")
    per_query = a.mean(axis=0) - b.mean(axis=0)
    lo, hi = interval(100.0 * resampled_means(per_query, resamples, seed), level)
    return {"difference": 100.0 * float(per_query.mean()) if per_query.size else 0.0, "interval": [lo, hi]}


def read_eval(folder: Path) -> tuple[dict[str, Any], np.ndarray]:
    """``recalls.json`` and bool (queries, len(RECALL_AT)) hits of one eval folder, checked against each other."""
    lacking = [f for f in (RECALLS_FILE, PREDICTIONS_FILE) if not (folder / f).is_file()]
    if lacking:
        raise SweepTableError(f"{folder} lacks {' and '.join(lacking)}; run the sweep again to evaluate it")
    try:
        report = json.loads((folder / RECALLS_FILE).read_text())
        nq = int(report["protocol"]["n_queries"])
        recalls = report["recalls"]["flat"] if "flat" in report["recalls"] else next(iter(report["recalls"].values()))
        values = {n: float(recalls[str(n)]) for n in RECALL_AT}
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as e:
        raise SweepTableError(f"{folder / RECALLS_FILE} is unreadable ({e}); run the sweep again") from None
    try:
        hits = hits_from_first_rank(first_hit_ranks(folder / PREDICTIONS_FILE, nq), RECALL_AT)
    except VgtrainError as e:
        raise SweepTableError(str(e)) from None
    for j, n in enumerate(RECALL_AT):
        derived = 100.0 * hits[:, j].sum() / max(nq, 1)
        if abs(derived - values[n]) > _TOLERANCE:
            raise SweepTableError(
                f"{folder}: {PREDICTIONS_FILE} gives R@{n} {derived:.3f} but {RECALLS_FILE} says {values[n]:.3f}"
            )
    return {"values": values, "n_queries": nq, "fingerprint": report["protocol"].get("eval_set_fingerprint")}, hits


def build_table(
    run_dir: str | os.PathLike,
    settings: Sequence[str],
    seeds: Sequence[int],
    eval_sets: Sequence[str],
    baseline: str | None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> list[dict[str, Any]]:
    """One row per (setting, eval set), in the order given (see the module docstring for the columns).

    ``baseline`` None, or not among ``settings``: the difference columns are None. Raises
    :class:`SweepTableError` when an eval is missing or its two files disagree, or when two
    settings' evals of one eval set come from different eval sets (fingerprints).
    """
    if not seeds:
        raise SweepTableError("a sweep table needs at least one seed")
    read: dict[tuple[str, str], tuple[list[dict[str, Any]], np.ndarray]] = {}
    for q in eval_sets:
        prints = set()
        for s in settings:
            evals = [read_eval(eval_folder(run_dir, s, k, q)) for k in seeds]
            if len({e[0]["n_queries"] for e in evals}) != 1:
                raise SweepTableError(f"setting {s!r} has evals of {q} with different query counts")
            prints |= {e[0]["fingerprint"] for e in evals}
            read[(s, q)] = ([e[0] for e in evals], np.stack([e[1] for e in evals]))  # (seeds, queries, N)
        if len(prints) > 1:
            raise SweepTableError(f"the evals of {q} come from different eval sets (fingerprints differ); re-run them")
    rows = []
    for s in settings:
        for q in eval_sets:
            infos, hits = read[(s, q)]
            row: dict[str, Any] = {
                "setting": s,
                "eval_set": q,
                "baseline": baseline if baseline in settings else None,
                "seeds": [int(k) for k in seeds],
                "n_queries": infos[0]["n_queries"],
                "eval_set_fingerprint": infos[0]["fingerprint"],
                "options": json.dumps(dict((options or {}).get(s, {})), sort_keys=True),
            }
            for j, n in enumerate(RECALL_AT):
                per_seed = [info["values"][n] for info in infos]
                row[f"r{n}"] = float(np.mean(per_seed))
                row[f"r{n}_lo"], row[f"r{n}_hi"] = seed_mean_interval(hits[:, :, j], resamples, seed, level)
                row[f"r{n}_per_seed"] = per_seed
                d = {"difference": None, "interval": [None, None]}
                if row["baseline"] is not None:
                    d = paired_seed_difference(hits[:, :, j], read[(baseline, q)][1][:, :, j], resamples, seed, level)
                row[f"d{n}"], (row[f"d{n}_lo"], row[f"d{n}_hi"]) = d["difference"], d["interval"]
            rows.append(row)
    return rows


def _ci(v: float | None, lo: float | None, hi: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    f = "+.1f" if signed else ".1f"
    return f"{v:{f}} [{lo:{f}}, {hi:{f}}]"


def markdown(rows: Sequence[Mapping[str, Any]], notes: Mapping[str, str] | None = None) -> str:
    """The table as Markdown: R@1/R@5 [95% CI] averaged over seeds, differences vs the baseline, per-seed R@1."""
    base = next((r["baseline"] for r in rows if r["baseline"]), None)
    vs = f"- {base}" if base else "- baseline"
    lines = [
        f"| setting | eval set | queries | R@1 [95% CI] | R@5 [95% CI] | R@1 {vs} | R@5 {vs} | R@1 per seed |",
        "|---|---|---:|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [r["setting"], r["eval_set"], str(r["n_queries"])]
        cells += [_ci(r[f"r{n}"], r[f"r{n}_lo"], r[f"r{n}_hi"]) for n in RECALL_AT]
        cells += [_ci(r[f"d{n}"], r[f"d{n}_lo"], r[f"d{n}_hi"], signed=True) for n in RECALL_AT]
        cells.append(", ".join(f"{v:.1f}" for v in r["r1_per_seed"]))
        lines.append("| " + " | ".join(cells) + " |")
    seeds = rows[0]["seeds"] if rows else []
    lines.append("")
    lines.append(
        f"Recall in %, mean over seeds {', '.join(map(str, seeds))}; 95% bootstrap intervals over queries (the same "
        "resampled queries for every seed, and for the setting and the baseline in the paired differences)."
    )
    for name, why in (notes or {}).items():
        lines.append(f"- {name}: {why}")
    return "\n".join(lines) + "\n"


def plot_png(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """PNG: R@1 per setting with its interval bar, one series per eval set (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    sets = list(dict.fromkeys(r["eval_set"] for r in rows))
    fig = Figure(figsize=(max(5.0, 1.1 * len(settings) + 2), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(len(sets), 1)
    for i, q in enumerate(sets):
        mine = {r["setting"]: r for r in rows if r["eval_set"] == q}
        x = np.array([j for j, s in enumerate(settings) if s in mine]) + (i - (len(sets) - 1) / 2) * width
        y = np.array([mine[s]["r1"] for s in settings if s in mine])
        err = np.array(
            [[mine[s]["r1"] - mine[s]["r1_lo"], mine[s]["r1_hi"] - mine[s]["r1"]] for s in settings if s in mine]
        )
        ax.errorbar(x, y, yerr=err.T if len(err) else None, fmt="o", capsize=4, label=q)
    ax.set_xticks(range(len(settings)), settings, rotation=20, ha="right")
    ax.set_ylabel("R@1 (%), mean over seeds, 95% CI")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _section(rows: Sequence[Mapping[str, Any]], notes: Mapping[str, str] | None = None) -> list[str]:
    """HTML of one table: the baseline, the rows, the R@1 plot (an embedded PNG) and the notes."""
    head = ["setting", "eval set", "queries", "R@1 [95% CI]", "R@5 [95% CI]", "R@1 - baseline", "R@5 - baseline"]
    body = []
    for r in rows:
        cells = [r["setting"], r["eval_set"], str(r["n_queries"])]
        cells += [_ci(r[f"r{n}"], r[f"r{n}_lo"], r[f"r{n}_hi"]) for n in RECALL_AT]
        cells += [_ci(r[f"d{n}"], r[f"d{n}_lo"], r[f"d{n}_hi"], signed=True) for n in RECALL_AT]
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    png = base64.b64encode(plot_png(rows)).decode("ascii") if rows else ""
    base = next((r["baseline"] for r in rows if r["baseline"]), None)
    return [
        f"<p>Baseline: {html.escape(str(base))}. Recall in %, mean over seeds, 95% bootstrap intervals over queries.</p>",
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>",
        *body,
        "</table>",
        f"<p><img alt='R@1 per setting' src='data:image/png;base64,{png}'></p>" if png else "",
        "<ul>" + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in (notes or {}).items()) + "</ul>",
    ]


def _document(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:3px 10px;border-bottom:1px solid #ddd}</style>",
            f"</head><body><h1>{html.escape(title)}</h1>",
            *body,
            "</body></html>\n",
        ]
    )


def page(rows: Sequence[Mapping[str, Any]], notes: Mapping[str, str] | None = None, title: str = "sweep") -> str:
    """A self-contained HTML page: the table and the plot (an embedded PNG)."""
    return _document(title, _section(rows, notes))


def pages(sections: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], title: str = "sweep") -> str:
    """One self-contained HTML page of several tables (each ``(heading, rows)``), each with its plot."""
    body = []
    for heading, rows in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", *_section(rows)]
    return _document(title, body)


def write_table(
    run_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]], notes: Mapping[str, str] | None = None
) -> dict[str, Path]:
    """Write ``sweep.parquet``, ``sweep.md`` and ``sweep.html`` into ``run_dir`` (atomically); returns their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    paths = {"parquet": run_dir / "sweep.parquet", "md": run_dir / "sweep.md", "html": run_dir / "sweep.html"}
    with atomic_path(paths["parquet"]) as tmp:
        pq.write_table(pa.Table.from_pylist([dict(r) for r in rows]), tmp)
    atomic_write_text(paths["md"], markdown(rows, notes))
    atomic_write_text(paths["html"], page(rows, notes, title=f"sweep: {run_dir.name}"))
    return paths


def direction(lo: float, hi: float, expected: int = -1) -> str:
    """Whether a paired difference's interval ``[lo, hi]`` (points) shows the ``expected`` sign.

    ``expected`` -1: the setting should be below its baseline, +1: above. Returns ``"holds"`` when the
    whole interval lies strictly on the expected side of 0, ``"reversed"`` when it lies strictly on
    the other side, else ``"not resolved"`` (the interval contains 0).
    """
    if expected not in (-1, 1):
        raise ValueError(f"expected must be -1 or +1, got {expected!r}")
    if lo > hi:
        raise ValueError(f"an interval needs lo <= hi, got [{lo}, {hi}]")
    if (hi < 0 and expected < 0) or (lo > 0 and expected > 0):
        return "holds"
    if (lo > 0 and expected < 0) or (hi < 0 and expected > 0):
        return "reversed"
    return "not resolved"
