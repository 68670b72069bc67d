"""``vgdata report``: one self-contained HTML page that shows a catalog (maps, plots, tables).

Every number and every figure comes from a DuckDB aggregate over the catalog's views (a few
scans of ``images``, whatever its size; never one Python object per image); the figures are
:mod:`vgdata.report_figures`' PNGs, embedded as base64 data URIs, so the page is one file with
no external link. Sections, each with a stable ``id``:

``coverage``     the coverage map (CosPlace Fig. 1 style): images of the most common UTM coordinate
                 system (``utm_epsg``, or derived from zone and letter where a part predates it) on a
                 grid of at most :data:`COVERAGE_CELLS` cells per side (fewer for few images), each
                 cell coloured by its modal year;
``collections``  images and panoramas per collection;
``years``, ``months``  images per year and per month (bar charts and tables, per collection);
``headings``     images per :data:`HEADING_BIN_DEG` degree heading bin (a rose and a table);
``classes``      CosPlace class sizes (``cosplace_class_stats``, ``vgdata/sql/core/``) for the groups
                 parameters of the newest groups manifest (or ``--groups``, or split-groups' defaults):
                 kept and dropped classes and images, and the images per group of that manifest;
``groups-map``   the cells of a window (default: the densest :data:`WINDOW_M` m square of the
                 classes' collection; ``--window LAT,LON,METRES``) coloured by group (Fig. 4 style);
``rejects``      rejected inputs by reason, with up to three examples (collection, path, detail);
``splits``       the splits of build.json and the images of each of their views.

The page is written atomically (:func:`vgdata.fsio.atomic_write_bytes`).
"""

from __future__ import annotations

import html
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgdata import report_figures as figs
from vgdata.catalog import Catalog, _sql_literal
from vgdata.errors import UsageError
from vgdata.fsio import atomic_write_bytes
from vgdata.views import stale_split

COVERAGE_CELLS = 200
"""Cells along the longer side of the coverage map's grid."""
HEADING_BIN_DEG = 10
"""Width of a heading bin of the rose, degrees."""
WINDOW_M = 200.0
"""Side of the default window of the group map, metres (the densest such square of the classes' collection)."""
MAX_WINDOW_CELLS = 200
"""Class cells along a side of the group map at most (a larger --window is refused)."""
GROUPS_DEFAULTS = {"M": 10, "alpha": 30, "N": 5, "L": 2, "min_images_per_class": 10, "groups_num": 8}
"""split-groups' defaults (:class:`vgdata.groups.GroupsConfig`), used when the catalog has no groups manifest."""
SECTIONS = ("coverage", "collections", "years", "months", "headings", "classes", "groups-map", "rejects", "splits")
"""The section ids of the page, in order."""


@dataclass
class ReportConfig:
    """Parameters of ``vgdata report``."""

    catalog: Path
    """Catalog folder."""
    out: Path = Path("report.html")
    """The HTML file to write."""
    groups: Path | None = None
    """A groups manifest whose parameters the class sections use (default: the newest in the catalog)."""
    window: tuple[float, float, float] | None = None
    """Group map window: (lat, lon) of its centre in degrees and its side in metres."""
    memory_limit: str = "1.5GB"
    """DuckDB memory limit; beyond it DuckDB spills to the system's temp folder."""


@dataclass
class ReportResult:
    """What the report wrote and how long each part took (seconds)."""

    out: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def parse_window(text: str) -> tuple[float, float, float]:
    """``LAT,LON,METRES`` -> (lat, lon, metres); UsageError naming --window when malformed."""
    try:
        lat, lon, side = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--window must be LAT,LON,METRES (degrees, degrees, metres), got {text!r}") from None
    if not (-80 <= lat <= 84 and -180 <= lon <= 180 and np.isfinite(side) and side > 0):
        raise UsageError(f"--window needs lat in [-80, 84], lon in [-180, 180] and METRES > 0, got {text!r}")
    return lat, lon, side


def _groups_params(cat: Catalog, manifest: Path | None) -> tuple[dict[str, Any], Path | None]:
    """(params, manifest): those of ``manifest``, else of the newest groups manifest, else the defaults."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    candidates = [manifest] if manifest else sorted(cat.manifests_dir.glob("groups_*.parquet"), key=os.path.getmtime)
    for path in reversed(candidates):
        try:
            meta = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException):
            if manifest:
                raise UsageError(f"--groups {manifest}: not a readable Parquet file") from None
            continue
        if meta.get(b"vgdata.kind") == b"groups":
            params = {**GROUPS_DEFAULTS, "collection": "database", **json.loads(meta[b"vgdata.params"])}
            return params, path
        if manifest:
            raise UsageError(f"--groups {manifest}: not a groups manifest (written by vgdata split-groups)")
    return {**GROUPS_DEFAULTS, "collection": "database"}, None


def catalog_report(config: ReportConfig) -> ReportResult:
    """Compute the report's aggregates over the catalog and write its HTML page to ``config.out``."""
    start = time.perf_counter()
    cat = Catalog(config.catalog)
    build = cat.require()
    params, manifest = _groups_params(cat, Path(config.groups) if config.groups else None)
    if config.window is not None and config.window[2] / float(params["M"]) > MAX_WINDOW_CELLS:
        raise UsageError(
            f"--window of {config.window[2]:g} m is over {MAX_WINDOW_CELLS} cells of M={params['M']:g} m; "
            "use a smaller one"
        )
    timings: dict[str, float] = {}
    parts: dict[str, str] = {}
    con = cat.connect()
    try:
        con.execute(f"set memory_limit = '{_sql_literal(config.memory_limit)}'")
        con.execute(f"set temp_directory = '{_sql_literal(tempfile.gettempdir())}/vgdata-duckdb-{os.getpid()}'")

        def timed(name: str, fn, *args) -> None:
            t = time.perf_counter()
            parts[name] = fn(con, *args)
            timings[name] = time.perf_counter() - t

        timed("coverage", _coverage)
        timed("collections", _counts_sections, build)
        timed("classes", _classes, params, manifest, config.window)
        timed("rejects", _rejects)
        timed("splits", _splits, build)
    finally:
        con.close()
    timings["total"] = time.perf_counter() - start
    page = _page(cat, build, parts, timings)
    out = Path(config.out)
    atomic_write_bytes(out, page.encode("utf-8"))
    return ReportResult(out=str(out), seconds=time.perf_counter() - start, timings=timings)


# ---------------------------------------------------------------- sections


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int | np.integer) else esc(value)


def _table(table_id: str, header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; the first cell of each row is its header cell."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + f"<th>{_num(r[0])}</th>" + "".join(_td(v) for v in r[1:]) + "</tr>" for r in rows)
    return f'<table id="{table_id}" class="data"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(value: Any) -> str:
    numeric = isinstance(value, int | np.integer)
    return f'<td class="n">{_num(value)}</td>' if numeric else f"<td>{esc(value)}</td>"


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{figs.data_uri_png(png)}" alt="{esc(alt)}">'


def _row(*parts: str) -> str:
    """Blocks side by side (wrapping on a narrow page)."""
    return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts) + "</div>"


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def _counts_sections(con, build: dict[str, Any]) -> str:
    """Collections, years, months and headings from one scan of the images (a few thousand groups)."""
    rows = con.sql(
        f"select collection, year, month, floor_div(wrap_heading(heading), {HEADING_BIN_DEG}) as hbin, "
        "count(*) as images from images group by all"
    ).fetchall()
    panos = dict(con.sql("select collection, count(*) from panoramas group by all").fetchall())
    img_colls = sorted({r[0] for r in rows})  # collections with images: the columns of the year/month tables
    colls = sorted(set(img_colls) | set(build.get("collections", {})))
    per_coll = {c: sum(r[4] for r in rows if r[0] == c) for c in colls}
    with_heading = {c: sum(r[4] for r in rows if r[0] == c and r[3] is not None) for c in colls}
    out = [
        _section(
            "collections",
            "Collections",
            _table(
                "table-collections",
                ["collection", "images", "panoramas", "with heading"],
                [[c, per_coll[c], panos.get(c, 0), with_heading[c]] for c in colls]
                + [["total", sum(per_coll.values()), sum(panos.values()), sum(with_heading.values())]],
            ),
        )
    ]
    for sid, title, idx, labeller in (
        ("years", "Images per year", 1, str),
        ("months", "Images per month", 2, lambda m: f"{m:02d}"),
    ):
        keys = sorted({r[idx] for r in rows if r[idx] is not None})
        count = {(r[0], r[idx]): 0 for r in rows}
        for r in rows:
            count[(r[0], r[idx])] += r[4]
        table_rows = [[labeller(k), *(count.get((c, k), 0) for c in img_colls)] for k in keys]
        if any(r[idx] is None for r in rows):
            table_rows.append(["unknown", *(count.get((c, None), 0) for c in img_colls)])
        for tr in table_rows:
            tr.append(sum(tr[1:]))
        chart = _img(figs.bars_png([r[0] for r in table_rows], [r[-1] for r in table_rows], sid[:-1]), title)
        out.append(
            _section(sid, title, _row(chart, _table(f"table-{sid}", [sid[:-1], *img_colls, "total"], table_rows)))
        )
    bins: dict[int, int] = {}
    for r in rows:
        if r[3] is not None:
            bins[int(r[3])] = bins.get(int(r[3]), 0) + r[4]
    starts = list(range(0, 360, HEADING_BIN_DEG))
    counts = [bins.get(i, 0) for i in range(len(starts))]
    if sum(counts):
        body = _img(figs.rose_png(starts, counts, HEADING_BIN_DEG), "headings rose")
    else:
        body = _note("No image has a heading.")
    no_heading = sum(r[4] for r in rows if r[3] is None)
    bins_table = [[f"{s}-{s + HEADING_BIN_DEG}", c] for s, c in zip(starts, counts, strict=True)]
    half = (len(bins_table) + 1) // 2  # two columns of bins side by side, to keep the page short
    body = _row(
        body,
        _table("table-headings", ["heading (deg)", "images"], bins_table[:half]),
        _table("table-headings-2", ["heading (deg)", "images"], [*bins_table[half:], ["none", no_heading]]),
    )
    out.append(_section("headings", f"Headings (all collections, {HEADING_BIN_DEG} deg bins)", body))
    return "".join(out)


EPSG_SQL = (
    "coalesce(utm_epsg, case when utm_zone between 1 and 60 and utm_letter is not null "
    "then (case when upper(utm_letter) >= 'N' then 32600 else 32700 end) + utm_zone end)"
)
"""An image's UTM system: its ``utm_epsg``, else the one of its zone and letter (parts written before that
column; letters were checked at ingest, so this is the ``utm_epsg`` macro without its checks)."""


def _dominant_crs(con) -> tuple[Any, int, int, tuple[float, float, float, float]] | None:
    """(UTM system, its images, images with UTM in other systems, its bounding box in metres), one scan."""
    rows = con.sql(
        f"select {EPSG_SQL} as epsg, count(*) as n, min(utm_east), min(utm_north), max(utm_east), max(utm_north) "
        "from images where utm_east is not null and utm_north is not null group by all order by n desc, epsg nulls last"
    ).fetchall()
    if not rows:
        return None
    return rows[0][0], rows[0][1], sum(r[1] for r in rows[1:]), tuple(rows[0][2:6])


def _crs_label(epsg: Any) -> str:
    return f"EPSG:{epsg}" if epsg is not None else "no UTM system recorded (one system of their own)"


def _coverage(con) -> str:
    """The coverage map: the grid cells of the most common UTM system, coloured by modal year."""
    crs = _dominant_crs(con)
    if crs is None:
        return _section("coverage", "Coverage", _note("No image has UTM coordinates: no map."))
    epsg, images, others, (e0, n0, e1, n1) = crs
    p = {"epsg": epsg}
    cells = min(COVERAGE_CELLS, max(20, int(2 * images**0.5)))  # fewer, larger cells when there are few images
    cell = max((max(e1 - e0, n1 - n0) or 1.0) / cells, 0.5)
    nx, ny = int((e1 - e0) // cell) + 1, int((n1 - n0) // cell) + 1
    grid = con.sql(
        "with c as (select least(floor((utm_east - $e0) / $cell), $nx - 1)::integer as i, "
        "least(floor((utm_north - $n0) / $cell), $ny - 1)::integer as j, coalesce(year, -1) as year, count(*) as k "
        f"from images where {EPSG_SQL} is not distinct from $epsg and utm_east is not null and utm_north is not null "
        "group by all) select i, j, arg_max(year, k)::integer as year, sum(k)::bigint as images from c group by i, j",
        params={**p, "e0": e0, "n0": n0, "cell": cell, "nx": nx, "ny": ny},
    ).fetchnumpy()
    png = figs.coverage_png(grid["i"], grid["j"], grid["year"], (nx, ny), cell, (e0, n0), _crs_label(epsg))
    body = _img(png, "coverage map coloured by year")
    note = f"{images:,} images of {_crs_label(epsg)} in {len(grid['i']):,} cells of {cell:.3g} m."
    if others:
        note += f" {others:,} images in other UTM systems are not shown."
    return _section("coverage", "Coverage (coloured by year)", body + _note(note))


def _classes(con, params: dict[str, Any], manifest: Path | None, window) -> str:
    """Class sizes, kept/dropped counts and the group map for the groups parameters ``params``."""
    m, alpha, n, l_, mipc = (float(params["M"]), float(params["alpha"]), int(params["N"]), int(params["L"]),
                             int(params["min_images_per_class"]))  # fmt: skip
    coll = str(params["collection"])
    where = "from manifest " + manifest.name if manifest else "split-groups' defaults (no groups manifest)"
    desc = ", ".join(f"{k}={v}" for k, v in params.items())
    con.execute(
        "create temp table stats as select * from cosplace_class_stats(m := $m, alpha := $alpha, coll := $coll)",
        {"m": m, "alpha": alpha, "coll": coll},
    )
    sizes = con.sql("select images, count(*) as classes from stats group by all order by images").fetchnumpy()
    kd = {
        k: (c, i)
        for k, c, i in con.sql(
            "select images >= $mipc, count(*), sum(images)::bigint from stats group by all", params={"mipc": mipc}
        ).fetchall()
    }
    (groups,) = con.sql(
        "select count(*) from (select distinct floor_mod(class_e, $n), floor_mod(class_n, $n), floor_mod(class_h, $l) "
        "from stats where images >= $mipc)",
        params={"n": n, "l": l_, "mipc": mipc},
    ).fetchall()[0]
    (total,) = con.sql("select count(*) from images where collection = $coll", params={"coll": coll}).fetchall()[0]
    kept, dropped = kd.get(True, (0, 0)), kd.get(False, (0, 0))
    rows = [
        ["kept classes", kept[0], kept[1]],
        ["dropped classes", dropped[0], dropped[1]],
        ["not classed (no heading or UTM)", "-", total - kept[1] - dropped[1]],
    ]
    chart = (
        _img(figs.class_sizes_png(sizes["images"], sizes["classes"], mipc), "class sizes")
        if len(sizes["images"])
        else ""
    )
    tables = _table("table-classes", ["", "classes", "images"], rows) + _note(f"{groups:,} groups have kept classes.")
    if manifest is not None:
        g = con.sql(
            f"select group_rank, count(distinct class_index)::bigint, count(*)::bigint from "
            f"read_parquet('{_sql_literal(str(manifest.resolve()))}') group by all order by group_rank"
        ).fetchall()
        tables += _note("Groups of the manifest:")
        tables += _table("table-manifest-groups", ["group rank", "classes", "images"], [list(r) for r in g])
    body = _note(f"Collection {coll!r}; parameters {where}: {desc}.") + _row(chart, tables)
    out = _section("classes", "CosPlace classes and groups", body)
    return out + _group_map(con, m, n, mipc, window)


def _group_map(con, m: float, n: int, mipc: int, window) -> str:
    """Cells of the window coloured by group (from the ``stats`` temp table)."""
    if window is not None:
        from vgdata.geo import latlon_to_utm, utm_epsg

        lat, lon, side = window
        u = latlon_to_utm(lat, lon)
        epsg = int(utm_epsg(u.zone, u.letter).item())
        e0, n0 = float(u.east) - side / 2, float(u.north) - side / 2
        box = (e0, n0, e0 + side, n0 + side)
        how = f"--window {lat},{lon},{side:g}"
    else:
        best = con.sql(
            "select utm_epsg, floor(class_e * $m / $w) as wx, floor(class_n * $m / $w) as wy, sum(images) as k "
            "from stats group by all order by k desc, utm_epsg, wx, wy limit 1",
            params={"m": m, "w": WINDOW_M},
        ).fetchall()
        if not best:
            return _section("groups-map", "Groups map", _note("No class: no map."))
        epsg, wx, wy, _ = best[0]
        side = WINDOW_M
        box = (wx * WINDOW_M, wy * WINDOW_M, (wx + 1) * WINDOW_M, (wy + 1) * WINDOW_M)
        how = f"the densest {WINDOW_M:g} m square"
    cells = con.sql(
        "select class_e, class_n, bool_or(images >= $mipc) as kept from stats "
        "where utm_epsg is not distinct from $epsg and (class_e + 1) * $m > $e0 and class_e * $m < $e1 "
        "and (class_n + 1) * $m > $n0 and class_n * $m < $n1 group by all",
        params={"mipc": mipc, "epsg": epsg, "m": m, "e0": box[0], "n0": box[1], "e1": box[2], "n1": box[3]},
    ).fetchnumpy()
    png = figs.group_map_png(cells["class_e"], cells["class_n"], cells["kept"], m, n, box)
    kept = int(np.sum(cells["kept"]))
    note = f"Window: {how}, {_crs_label(epsg)}, {len(cells['kept']):,} cells ({kept:,} with a kept class)."
    return _section("groups-map", "Groups map (cells coloured by group)", _img(png, "group map") + _note(note))


def _rejects(con) -> str:
    """Rejected inputs by reason, with up to three examples each."""
    counts = con.sql("select reason, count(*) as n from rejects group by all order by n desc, reason").fetchall()
    if not counts:
        return _section("rejects", "Rejects", _note("No input was rejected."))
    examples: dict[str, list[tuple]] = {}
    for reason, coll, path, detail in con.sql(
        "select reason, collection, path, detail from (select *, row_number() over (partition by reason "
        "order by collection, path, row) as rn from rejects) where rn <= 3 order by reason, rn"
    ).fetchall():
        examples.setdefault(reason, []).append((coll, path, detail))
    body = "".join(
        f"<tr><th>{esc(reason)}</th><td>{k:,}</td><td><ul>"
        + "".join(f"<li>{esc(c)}: <code>{esc(p)}</code> {esc(d or '')}</li>" for c, p, d in examples.get(reason, []))
        + "</ul></td></tr>"
        for reason, k in counts
    )
    table = (
        '<table id="table-rejects" class="data"><thead><tr><th>reason</th><th>rejects</th><th>examples</th>'
        f"</tr></thead><tbody>{body}</tbody></table>"
    )
    return _section("rejects", "Rejects by reason", table)


def _splits(con, build: dict[str, Any]) -> str:
    """Every split of build.json and the images of each of its views (counted through the view)."""
    rows = []
    for name, split in sorted(build.get("splits", {}).items()):
        stale = stale_split(build, name)
        for view in split["views"]:
            if stale is not None:  # its view would refuse to answer: say why instead of a count
                rows.append([view, name, split.get("macro", ""), stale])
                continue
            (k,) = con.sql(f'select count(*) from "{view}"').fetchall()[0]  # names checked by vgdata.views
            rows.append([view, name, split.get("macro", ""), k])
    if not rows:
        return _section("splits", "Splits", _note("No split defined (vgdata split-years, split-places, ...)."))
    return _section("splits", "Splits", _table("table-splits", ["view", "split", "macro", "images"], rows))


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table.data { border-collapse: collapse; margin: 8px 0; }
table.data th, table.data td { border: 1px solid #ccc; padding: 3px 10px; }
table.data td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.data tbody th { text-align: left; font-weight: normal; background: #f6f6f6; }
table.data ul { margin: 0; padding-left: 1.2em; text-align: left; font-size: 0.85em; }
img { max-width: 100%; display: block; }
div.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.note { color: #666; font-size: 0.9em; }
"""


def _page(cat: Catalog, build: dict[str, Any], parts: dict[str, str], timings: dict[str, float]) -> str:
    took = ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>vgdata report: {esc(cat.root.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Catalog {esc(cat.root.resolve())}</h1>"
        + _note(f"fingerprint {build.get('fingerprint', '')}; vgdata {build.get('tool_version', '')}")
        + "".join(parts.values())
        + f"<footer>{_note('Computed with DuckDB aggregates in ' + took + '.')}</footer></body></html>\n"
    )
