"""The evaluation report: one self-contained ``report.html`` (``vgtrain eval`` writes it).

:func:`write_report` puts in one file, with every image embedded as a base64 data URI (no
external file, stylesheet, script or URL):

1. the recall table, one row per index kind (``flat``, ``ivfpq``, ...), each recall with its
   95% bootstrap interval in brackets when given, and, when both flat and IVF-PQ were searched,
   the recall IVF-PQ loses (flat - ivfpq) per N; below it the chance level (mean positives per
   query / database size: the R@1 a random ranking gets, roughly) and how the intervals were
   made; when the eval set holds several radii, a second table with one row per radius
   (Recall@N from the same predictions, and the queries without a positive at that radius);
   then the protocol (sets, counts, threshold, model, checkpoint, index parameters, timings)
   as a table;
2. a map (matplotlib, Agg canvas, PNG): database positions as small grey points, queries green
   when their first prediction is a positive (correct at R@1) and red otherwise, in metres
   from the south-west corner of the UTM coordinates of the eval manifest;
3. up to ``num_preds_to_save`` queries, wrong ones first (then by query idx): the query
   thumbnail and its top-``top_k`` flat-index predictions framed green (positive) or red (not),
   captioned with the rank (1 = nearest) and the distance.

The map and the thumbnails are :mod:`vgtrain.report_images`' (thumbnails: the shorter side
``thumb_size`` pixels, JPEG; a missing or undecodable image becomes a grey placeholder naming
the file). The page is written atomically (:func:`vgtrain.fsio.atomic_path`). Only pyarrow,
numpy, Pillow and matplotlib are used (no vgdata).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vgtrain.fsio import atomic_write_text
from vgtrain.report_images import GREEN, RED, esc, map_html, thumbnails

PREDICTION_COLUMNS = (
    "query_idx",
    "query_image_id",
    "rank",
    "database_idx",
    "database_image_id",
    "distance",
    "is_positive",
)
"""Columns of the predictions table (one row per query and rank, rank 0-based)."""

_CSS = f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }}
h2 {{ font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; }}
table.recalls th, table.recalls td, table.protocol th, table.protocol td {{
  border: 1px solid #ccc; padding: 3px 10px; }}
table.recalls td {{ text-align: right; font-variant-numeric: tabular-nums; }}
table.recalls span.ci {{ color: #666; font-size: 0.85em; }}
table.recalls tr.loss td, table.recalls tr.loss th {{ color: #a33; font-style: italic; }}
table.protocol th {{ text-align: left; font-weight: normal; color: #555; background: #f6f6f6; }}
table.protocol td {{ font-family: ui-monospace, monospace; font-size: 0.9em; word-break: break-all; }}
table.preds td {{ vertical-align: top; padding: 4px; }}
table.preds tr.qrow {{ border-top: 1px solid #ddd; }}
figure {{ margin: 0; display: inline-block; padding: 2px; border: 4px solid transparent; }}
figure img {{ display: block; }}
figure.query {{ border-color: #3461c1; }}
figure.pos {{ border-color: {GREEN}; }}
figure.neg {{ border-color: {RED}; }}
figcaption {{ font-size: 0.8em; max-width: 260px; }}
.wrong {{ color: {RED}; font-weight: bold; }}
.correct {{ color: {GREEN}; font-weight: bold; }}
.note {{ color: #666; font-size: 0.9em; }}
"""


def write_report(
    out_dir: str | os.PathLike,
    *,
    recalls: Mapping[str, Mapping[Any, float]],
    protocol: Mapping[str, Any],
    predictions: pa.Table,
    manifest,
    num_preds_to_save: int = 20,
    top_k: int = 5,
    thumb_size: int = 128,
    intervals: Mapping[str, Mapping[Any, Sequence[float]]] | None = None,
    bootstrap: Mapping[str, Any] | None = None,
    recalls_by_threshold: Mapping[str, Mapping[Any, float]] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` and return its path.

    ``recalls``: ``{"flat": {1: 43.2, 5: ...}}`` and optionally ``"ivfpq"`` (percent; N may be
    int or str). ``protocol``: a dict rendered as a table (nested dicts become dotted keys); its
    ``chance_level``, ``mean_positives`` and ``n_database`` give the chance-level line.
    ``intervals``: ``{"flat": {1: [lo, hi], ...}}`` (percent), shown after each recall;
    ``bootstrap``: how they were made (``resamples``, ``seed``, ``level``, ``method``).
    ``recalls_by_threshold``: ``{"10": {1: 30.0, ...}, "25": {...}}`` (radius in metres as text -> Recall@N);
    shown as its own table when it holds more than one radius, with the protocol's ``threshold_m`` marked
    primary and its ``positives_by_threshold`` counts.
    ``predictions``: the top-k per query (of the flat index when both were searched) (:data:`PREDICTION_COLUMNS`).
    ``manifest``: a :class:`vgtrain.manifest.EvalManifest` (image paths, positives, ``database_utm``/``query_utm``).
    Raises ValueError for a predictions table without the needed columns, indices outside the
    manifest or a negative ``num_preds_to_save``/``top_k``/``thumb_size`` < 1; missing or
    unreadable image files only give placeholders.
    """
    if num_preds_to_save < 0 or top_k < 0 or thumb_size < 1:
        raise ValueError(
            f"need num_preds_to_save >= 0, top_k >= 0 and thumb_size >= 1, got "
            f"{num_preds_to_save}, {top_k}, {thumb_size}"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_queries = len(manifest.queries)
    preds = _prediction_arrays(predictions, n_queries, len(manifest.database))
    correct = _correct_at_1(preds, n_queries)

    params = getattr(manifest, "params", None) or {}
    title = "vgtrain eval"
    if params.get("queries") or params.get("database"):
        title += f": {params.get('queries', '?')} against {params.get('database', '?')}"

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        _summary_html(correct, manifest),
        "<h2>Recall@N (%)</h2>",
        _recalls_html(recalls, intervals),
        _chance_html(protocol, bootstrap if intervals else None),
        _thresholds_html(recalls_by_threshold, protocol),
        "<h2>Protocol</h2>",
        _protocol_html(protocol),
        "<h2>Map</h2>",
        map_html(manifest, correct),
        "<h2>Predictions</h2>",
        _grid_html(preds, correct, manifest, num_preds_to_save, top_k, thumb_size, protocol.get("index")),
        "</body>",
        "</html>",
    ]
    path = out / "report.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


# ---------------------------------------------------------------- helpers


def _prediction_arrays(table: pa.Table, n_queries: int, n_database: int) -> dict[str, np.ndarray]:
    """The predictions as numpy arrays sorted by (query_idx, rank), after checking columns and ranges."""
    missing = [c for c in PREDICTION_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"the predictions table lacks columns {', '.join(missing)}")
    arrays: dict[str, np.ndarray] = {}
    for name in PREDICTION_COLUMNS:
        col = table[name]
        if col.null_count:
            raise ValueError(f"the predictions table has nulls in {name}")
        arrays[name] = col.to_numpy()
    q = arrays["query_idx"].astype(np.int64)
    if q.size and (q.min() < 0 or q.max() >= n_queries):
        raise ValueError(f"the predictions table has query_idx outside 0..{n_queries - 1}")
    d = arrays["database_idx"].astype(np.int64)
    if d.size and d.max() >= n_database:
        raise ValueError(f"the predictions table has database_idx beyond {n_database - 1}")
    order = np.lexsort((arrays["rank"], q))
    return {k: v[order] for k, v in arrays.items()}


def _correct_at_1(preds: dict[str, np.ndarray], n_queries: int) -> np.ndarray:
    """bool per query: its rank-0 prediction is a positive (queries without one count as wrong)."""
    correct = np.zeros(n_queries, dtype=bool)
    first = preds["rank"] == 0
    correct[preds["query_idx"][first].astype(np.int64)] = preds["is_positive"][first].astype(bool)
    return correct


def _summary_html(correct: np.ndarray, manifest) -> str:
    n = len(correct)
    n_ok = int(correct.sum())
    no_pos = sum(1 for p in manifest.positives if len(p) == 0)
    text = (
        f"{len(manifest.database)} database images, {n} queries: {n_ok} correct at R@1, "
        f"{n - n_ok} wrong ({no_pos} of them without any positive within the threshold)."
    )
    return f'<p class="note">{esc(text)}</p>'


def _recall_key(n: Any) -> int | None:
    try:
        return int(n)
    except (TypeError, ValueError):
        return None


def _fmt_pct(v: Any) -> str:
    try:
        return f"{float(v):.2f}"
    except (TypeError, ValueError):
        return esc(v)


def _fmt_interval(iv: Any) -> str:
    """`` [lo, hi]`` (one decimal) for a pair of numbers, else ''."""
    try:
        lo, hi = (float(x) for x in iv)
    except (TypeError, ValueError):
        return ""
    return f' <span class="ci">[{lo:.1f}, {hi:.1f}]</span>'


def _by_n(values: Mapping[Any, Any] | None) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for n, v in (values or {}).items():
        key = _recall_key(n)
        if key is not None:
            out[key] = v
    return out


def _recalls_html(
    recalls: Mapping[str, Mapping[Any, float]], intervals: Mapping[str, Mapping[Any, Sequence[float]]] | None = None
) -> str:
    if not recalls:
        return '<p class="note">No recall values.</p>'
    kinds = sorted(recalls, key=lambda k: ({"flat": 0, "ivfpq": 1}.get(k, 2), k))
    table = {kind: _by_n(recalls[kind]) for kind in kinds}
    cis = {kind: _by_n((intervals or {}).get(kind)) for kind in kinds}
    ns = sorted({n for row in table.values() for n in row})
    head = "".join(f'<th scope="col">R@{n}</th>' for n in ns)
    rows = [f'<table class="recalls"><thead><tr><th scope="col">index</th>{head}</tr></thead><tbody>']
    for kind in kinds:
        cells = "".join(
            f"<td>{_fmt_pct(table[kind][n])}{_fmt_interval(cis[kind].get(n))}</td>"
            if n in table[kind]
            else "<td>&ndash;</td>"
            for n in ns
        )
        rows.append(f'<tr><th scope="row">{esc(kind)}</th>{cells}</tr>')
    if "flat" in table and "ivfpq" in table:
        cells = []
        for n in ns:
            try:
                cells.append(f"<td>{float(table['flat'][n]) - float(table['ivfpq'][n]):.2f}</td>")
            except (KeyError, TypeError, ValueError):
                cells.append("<td>&ndash;</td>")
        rows.append(f'<tr class="loss"><th scope="row">recall lost (flat &minus; ivfpq)</th>{"".join(cells)}</tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _thresholds_html(by_threshold: Mapping[str, Mapping[Any, float]] | None, protocol: Mapping[str, Any]) -> str:
    """Recall@N per radius (one row each, ascending), or '' for one radius or none."""
    if not by_threshold or len(by_threshold) < 2:
        return ""

    def metres(key: str) -> float:
        try:
            return float(key)
        except (TypeError, ValueError):
            return math.inf

    keys = sorted(by_threshold, key=lambda k: (metres(k), str(k)))
    table = {k: _by_n(by_threshold[k]) for k in keys}
    ns = sorted({n for row in table.values() for n in row})
    counts = protocol.get("positives_by_threshold") or {}
    primary = protocol.get("threshold_m")
    head = "".join(f'<th scope="col">R@{n}</th>' for n in ns)
    rows = [
        "<h2>Recall@N (%) per threshold</h2>",
        f'<table class="recalls"><thead><tr><th scope="col">threshold</th>{head}'
        '<th scope="col">queries without a positive</th></tr></thead><tbody>',
    ]
    for k in keys:
        label = f"{k} m" + (" (primary)" if primary is not None and metres(k) == metres(str(primary)) else "")
        cells = "".join(f"<td>{_fmt_pct(table[k][n])}</td>" if n in table[k] else "<td>&ndash;</td>" for n in ns)
        without = (counts.get(k) or {}).get("queries_without_positives")
        rows.append(
            f'<tr><th scope="row">{esc(label)}</th>{cells}<td>{esc(without) if without is not None else "&ndash;"}</td></tr>'
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def chance_text(protocol: Mapping[str, Any]) -> str | None:
    """``chance level 1.2% (mean 14.3 positives per query / 1,200 database images)``, or None.

    From the protocol's ``chance_level`` (percent), ``mean_positives`` and ``n_database``; None when
    one is missing (a recalls.json of an older vgtrain).
    """
    try:
        chance = float(protocol["chance_level"])
        mean_pos = float(protocol["mean_positives"])
        n_db = int(protocol["n_database"])
    except (KeyError, TypeError, ValueError):
        return None
    pct = f"{chance:.1f}" if chance >= 1 else f"{chance:.2g}"
    return f"chance level {pct}% (mean {mean_pos:.1f} positives per query / {n_db:,} database images)"


def _chance_html(protocol: Mapping[str, Any], bootstrap: Mapping[str, Any] | None) -> str:
    """The chance level (from the protocol) and how the intervals were made, as notes; '' without either."""
    notes = []
    chance = chance_text(protocol)
    if chance:
        notes.append(f"{chance[0].upper()}{chance[1:]}: roughly the R@1 of a random ranking.")
    if bootstrap:
        level = bootstrap.get("level", 0.95)
        try:
            pct = f"{100 * float(level):g}%"
        except (TypeError, ValueError):
            pct = str(level)
        notes.append(
            f"In brackets: {pct} bootstrap intervals ({bootstrap.get('method', 'percentile')}; "
            f"{bootstrap.get('resamples', '?')} resamples, seed {bootstrap.get('seed', '?')})."
        )
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def _fmt_value(v: Any) -> str:
    if v is None:
        return "\u2013"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_value(x) for x in v)
    if isinstance(v, Mapping):  # an empty dict
        return "\u2013"
    return str(v)


def _protocol_html(protocol: Mapping[str, Any]) -> str:
    if not protocol:
        return '<p class="note">No protocol recorded.</p>'
    rows = "".join(
        f'<tr><th scope="row">{esc(k)}</th><td>{esc(_fmt_value(v))}</td></tr>' for k, v in _flatten(protocol)
    )
    return f'<table class="protocol"><tbody>{rows}</tbody></table>'


# ---------------------------------------------------------------- grid


def _figure(uri: str, found: bool, path: str, cls: str, caption: str) -> str:
    name = os.path.basename(path) or path
    alt = name if found else f"not available: {name}"
    return (
        f'<figure class="{cls}"><img src="{uri}" alt="{esc(alt)}" title="{esc(name)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _grid_html(
    preds: dict[str, np.ndarray],
    correct: np.ndarray,
    manifest,
    num: int,
    top_k: int,
    thumb_size: int,
    index: str | None = None,
) -> str:
    n_queries = len(correct)
    shown = np.lexsort((np.arange(n_queries), correct))[: min(num, n_queries)]  # wrong (False) first
    if not len(shown):
        return '<p class="note">No queries shown (num_preds_to_save is 0).</p>'
    q_all = preds["query_idx"].astype(np.int64)
    starts = np.searchsorted(q_all, shown, side="left")
    ends = np.searchsorted(q_all, shown, side="right")
    rows_of = {}
    paths: list[str] = []
    for qi, a, b in zip(shown.tolist(), starts.tolist(), ends.tolist(), strict=True):
        sel = np.arange(a, b)
        sel = sel[preds["rank"][sel] < top_k][:top_k]
        rows_of[qi] = sel
        paths.append(manifest.queries[qi])
        paths.extend(manifest.database[int(preds["database_idx"][j])] for j in sel if preds["database_idx"][j] >= 0)
    thumbs = thumbnails(paths, thumb_size)

    n_wrong = int((~correct[shown]).sum())
    out = [
        f'<p class="note">{len(shown)} of {n_queries} queries, the {n_wrong} wrong at R@1 first; '
        f"top-{top_k} predictions of the {'IVF-PQ' if index == 'ivfpq' else 'flat (exact)'} index, framed "
        f'<span class="correct">green</span> when positive and <span class="wrong">red</span> when not '
        "(rank 1 = nearest; d = distance).</p>",
        '<table class="preds"><thead><tr><th scope="col">query</th>',
        *(f'<th scope="col">#{r + 1}</th>' for r in range(top_k)),
        "</tr></thead><tbody>",
    ]
    for qi in shown.tolist():
        sel = rows_of[qi]
        ok = bool(correct[qi])
        n_pos = len(manifest.positives[qi])
        ranks = preds["rank"][sel]
        hits = ranks[preds["is_positive"][sel].astype(bool)]
        if ok:
            where = ""
        elif n_pos == 0:
            where = "; no positive exists"
        elif len(hits):
            where = f"; first positive at #{int(hits.min()) + 1}"
        else:
            where = f"; no positive in the top {top_k}"
        image_id = f" (id {int(preds['query_image_id'][sel[0]])})" if len(sel) else ""
        status = '<span class="correct">correct</span>' if ok else '<span class="wrong">wrong</span>'
        caption = (
            f'<span class="qid">query {qi}</span>{esc(image_id)}<br>{status} at R@1{esc(where)}<br>{n_pos} positives'
        )
        qpath = manifest.queries[qi]
        cells = [f"<td>{_figure(*thumbs[qpath], qpath, 'query', caption)}</td>"]
        for j in sel.tolist():
            d = int(preds["database_idx"][j])
            positive = bool(preds["is_positive"][j])
            cap = esc(f"#{int(preds['rank'][j]) + 1} d={float(preds['distance'][j]):.4g} db {d}")
            if d < 0:
                cells.append(f'<td><span class="note">{cap}<br>no prediction</span></td>')
                continue
            dpath = manifest.database[d]
            cells.append(f"<td>{_figure(*thumbs[dpath], dpath, 'pos' if positive else 'neg', cap)}</td>")
        cells.extend("<td></td>" for _ in range(top_k - len(sel)))
        out.append(f'<tr class="qrow" data-query-idx="{qi}">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)
