"""``vgdata report``: the HTML page of a catalog, parsed back and checked against DuckDB counts.

The catalog is a copy of the tiny city (``tiny_catalog``) with a groups manifest, a year split,
a test split and a collection of rejected photos (a corrupt JPEG and one without GPS). Every
number the page shows is recomputed here with DuckDB straight from the catalog's Parquet files
(not through the catalog's views or macros), and every figure must be a PNG data URI that
Pillow decodes.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from vgdata.errors import UsageError
from vgdata.groups import GroupsConfig, split_groups
from vgdata.report import SECTIONS, ReportConfig, catalog_report, parse_window
from vgdata.splits import split_test, split_years

ROOT = Path(__file__).resolve().parents[1]
MIPC = 2


class Page(HTMLParser):
    """Section ids, image sources and every table (id -> rows of cell texts) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _body(page: Page, table: str) -> dict[str, list[str]]:
    """Data rows of a table (its header row left out), keyed by their first cell."""
    return {r[0]: r[1:] for r in page.tables[table][1:]}


@pytest.fixture(scope="module")
def cat(tiny_catalog, tmp_path_factory) -> Path:
    from vgdata.build import BuildConfig, build_catalog

    root = tmp_path_factory.mktemp("report")
    cat = root / "cat"
    shutil.copytree(tiny_catalog, cat)
    photos = root / "bad_photos"
    photos.mkdir()
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    Image.new("RGB", (32, 32), (120, 30, 30)).save(photos / "no_gps.jpg")
    Image.new("RGB", (40, 32), (30, 120, 30)).save(photos / "no_gps_2.jpg")
    build_catalog(BuildConfig(cat, photos=photos, collection="bad", workers=1))
    split_groups(GroupsConfig(cat, min_images_per_class=MIPC, groups_num=2))
    split_years(cat, name="yr", queries_from=2015)
    split_test(cat, name="t13", year=2013)
    return cat


@pytest.fixture(scope="module")
def page(cat, tmp_path_factory) -> tuple[Page, Path]:
    """The report of ``cat``, written by the CLI (``vgdata report CAT --out ... --json``)."""
    out = tmp_path_factory.mktemp("report_out") / "report.html"
    r = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "report", str(cat), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["out"] == str(out)
    p = Page()
    p.feed(out.read_text())
    return p, out


def _sql(cat: Path, query: str) -> list[tuple]:
    """``query`` with ``images`` and ``rejects`` read straight from the catalog's Parquet parts."""
    con = duckdb.connect()
    for table in ("images", "rejects"):
        con.execute(
            f"create view {table} as select * from read_parquet('{cat}/{table}/*.parquet', union_by_name = true)"
        )
    return con.sql(query).fetchall()


def test_every_section_and_embedded_png(page):
    p, out = page
    assert p.sections == list(SECTIONS)
    assert len(p.images) == 6  # coverage, years, months, rose, class sizes, group map
    for src in p.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100 and im.height > 100
    text = out.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_years_months_and_collections_equal_duckdb_counts(page, cat):
    p, _ = page
    colls = [c for (c,) in _sql(cat, "select distinct collection from images order by 1")]
    for table, col, fmt in (("table-years", "year", str), ("table-months", "month", lambda m: f"{m:02d}")):
        header = p.tables[table][0]
        assert header == [col, *colls, "total"]
        want: dict[str, list[int]] = {}
        for key, coll, k in _sql(cat, f"select {col}, collection, count(*) from images group by all"):
            row = want.setdefault("unknown" if key is None else fmt(key), [0] * len(colls))
            row[colls.index(coll)] = k
        got = {key: [_int(v) for v in vals] for key, vals in _body(p, table).items()}
        assert got == {key: [*v, sum(v)] for key, v in want.items()}
    got = _body(p, "table-collections")
    for coll, k in _sql(cat, "select collection, count(*) from images group by all"):
        assert _int(got[coll][0]) == k
    (total,) = _sql(cat, "select count(*) from images")[0]
    assert _int(got["total"][0]) == total


def test_heading_bins_equal_duckdb_counts(page, cat):
    p, _ = page
    rows = p.tables["table-headings"][1:] + p.tables["table-headings-2"][1:]
    got = {r[0]: _int(r[1]) for r in rows}
    want = {f"{10 * b}-{10 * b + 10}": 0 for b in range(36)}
    # headings are in [0, 360) in the catalog (vgdata/schema.py)
    for b, k in _sql(cat, "select floor(heading / 10)::int, count(*) from images where heading is not null group by 1"):
        want[f"{10 * b}-{10 * b + 10}"] = k
    want["none"] = _sql(cat, "select count(*) from images where heading is null")[0][0]
    assert got == want


def test_rejects_by_reason_with_examples(page, cat):
    p, _ = page
    want = dict(_sql(cat, "select reason, count(*) from rejects group by all"))
    assert want, "the fixture must produce rejects"
    got = _body(p, "table-rejects")
    assert {r: _int(v[0]) for r, v in got.items()} == want
    paths = {r: [x for (x,) in _sql(cat, f"select path from rejects where reason = '{r}'")] for r in want}
    for reason, (_, examples) in got.items():
        assert any(Path(x).name in examples for x in paths[reason])


def test_class_counts_equal_duckdb_counts(page, cat):
    """Kept/dropped classes for the groups manifest's parameters (M=10, alpha=30, mipc=2), counted here."""
    p, _ = page
    stats = _sql(
        cat,
        "select count(*) filter (where k >= 2), sum(k) filter (where k >= 2), count(*) filter (where k < 2), "
        "sum(k) filter (where k < 2) from (select utm_zone, utm_letter, floor(utm_east / 10), floor(utm_north / 10), "
        "floor(heading / 30), count(*) as k from images where collection = 'database' and heading is not null "
        "and utm_east is not null group by all)",
    )[0]
    got = _body(p, "table-classes")
    assert [_int(x) for x in got["kept classes"]] == [stats[0], stats[1]]
    assert [_int(x) for x in got["dropped classes"]] == [stats[2], stats[3] or 0]
    manifest = next((cat / "manifests").glob("groups_*.parquet"))
    want = duckdb.sql(
        f"select group_rank, count(distinct class_index), count(*) from '{manifest}' group by 1 order by 1"
    ).fetchall()
    assert [[_int(x) for x in r] for r in p.tables["table-manifest-groups"][1:]] == [list(r) for r in want]


def test_split_sizes_equal_duckdb_counts(page, cat):
    p, _ = page
    got = {view: _int(v[-1]) for view, v in _body(p, "table-splits").items()}
    q = "select count(*) from images where collection = 'database' and "
    assert got == {
        "yr_queries": _sql(cat, q + "year >= 2015")[0][0],
        "yr_database": _sql(cat, q + "year < 2015")[0][0],
        "t13": _sql(cat, q + "year = 2013")[0][0],
    }


@pytest.mark.slow
def test_window_and_groups_options(cat, tmp_path):
    """A window around an image and an explicit manifest (a second full report: slow)."""
    lat, lon = _sql(cat, "select lat, lon from images where collection = 'database' order by image_id limit 1")[0]
    out = tmp_path / "w.html"
    manifest = next((cat / "manifests").glob("groups_*.parquet"))
    catalog_report(ReportConfig(cat, out=out, groups=manifest, window=(lat, lon, 60.0)))
    text = out.read_text()
    assert "--window" in text and manifest.name in text
    page = Page()
    page.feed(text)
    assert page.sections == list(SECTIONS)


def test_bad_window_and_groups_options(cat, tmp_path):
    """Refused in one line before any scan."""
    out = tmp_path / "w.html"
    lat, lon = _sql(cat, "select lat, lon from images where collection = 'database' order by image_id limit 1")[0]
    with pytest.raises(UsageError, match="--window"):
        parse_window("37.7,-122.4")
    with pytest.raises(UsageError, match="--window"):
        catalog_report(ReportConfig(cat, out=out, window=(lat, lon, 50_000.0)))
    with pytest.raises(UsageError, match="not a groups manifest"):
        catalog_report(ReportConfig(cat, out=out, groups=next((cat / "images").glob("*.parquet"))))


def test_cli_reports_a_bad_window_in_one_line(cat):
    bad = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "report", str(cat), "--window", "x"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--window" in bad.stderr
