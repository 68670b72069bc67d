"""vgtrain.report: the self-contained report.html of ``vgtrain eval``."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vgtrain.data import EvalManifest
from vgtrain.report import GREEN, RED, write_report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Collects tags, checks nesting, and keeps imgs, figures and query rows in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.imgs: list[dict[str, str]] = []
        self.figures: list[str] = []
        self.query_rows: list[int] = []
        self.attr_values: list[str] = []
        self.text: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs) -> None:
        a = {k: v or "" for k, v in attrs}
        self.attr_values.extend(a.values())
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "img":
            self.imgs.append(a)
        elif tag == "figure":
            self.figures.append(a.get("class", ""))
        elif tag == "tr" and "qrow" in a.get("class", "").split():
            self.query_rows.append(int(a["data-query-idx"]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.doctype
    assert page.errors == [] and page.stack == []
    return page


def decode(src: str) -> Image.Image:
    m = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", src)
    assert m, src[:80]
    im = Image.open(io.BytesIO(base64.b64decode(m.group(2), validate=True)))
    im.load()
    assert im.format == m.group(1).upper()
    return im


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> EvalManifest:
    """6 panoramas 28 m apart (72 crops): the 12 crops of a panorama are each other's positives."""
    from raw_panoramas import make_raw_panoramas

    from vgdata.build import BuildConfig, build_catalog
    from vgdata.evalset import eval_set

    root = tmp_path_factory.mktemp("report")
    panos, csv = make_raw_panoramas(root / "raw", n=6, width=416, spacing_m=20)
    build_catalog(BuildConfig(root / "cat", panoramas=panos, metadata=csv, workers=1))
    ev = eval_set(root / "cat", name="self", database="database", queries="database")
    m = EvalManifest.read(ev.manifest)
    assert len(m.queries) == 72 and all(len(p) == 12 for p in m.positives)
    return m


def wrong_ids(n: int) -> set[int]:
    return {q for q in range(n) if q % 5 == 2}


def make_predictions(m: EvalManifest, k: int = 6, wrong: set[int] | None = None) -> pa.Table:
    """Top-k per query; queries in ``wrong`` get a non-positive first, the others a positive first.

    Ranks alternate non-positive / positive after the first, so each row mixes both frames.
    """
    wrong = wrong_ids(len(m.queries)) if wrong is None else wrong
    n_db = len(m.database)
    cols: dict[str, list] = {c: [] for c in ("query_idx", "rank", "database_idx", "distance", "is_positive")}
    for q, pos in enumerate(m.positives):
        pos_list = [int(p) for p in pos if p != q] or [int(pos[0])]
        neg_list = [d for d in range(n_db) if d not in set(pos.tolist())]
        first_positive = q not in wrong
        for r in range(k):
            take_pos = (r % 2 == 0) == first_positive
            d = pos_list[(q + r) % len(pos_list)] if take_pos else neg_list[(q * 7 + r) % len(neg_list)]
            cols["query_idx"].append(q)
            cols["rank"].append(r)
            cols["database_idx"].append(d)
            cols["distance"].append(0.1 * (r + 1) + q / 1000)
            cols["is_positive"].append(bool(np.isin(d, pos)))
    ids = pq.read_table(m.path, columns=["role", "idx", "image_id"]).to_pylist()
    db_id = {r["idx"]: r["image_id"] for r in ids if r["role"] == "database"}
    q_id = {r["idx"]: r["image_id"] for r in ids if r["role"] == "query"}
    return pa.table(
        {
            "query_idx": pa.array(cols["query_idx"], pa.int32()),
            "query_image_id": pa.array([q_id[q] for q in cols["query_idx"]], pa.int64()),
            "rank": pa.array(cols["rank"], pa.int16()),
            "database_idx": pa.array(cols["database_idx"], pa.int32()),
            "database_image_id": pa.array([db_id[d] for d in cols["database_idx"]], pa.int64()),
            "distance": pa.array(cols["distance"], pa.float32()),
            "is_positive": pa.array(cols["is_positive"], pa.bool_()),
        }
    )


RECALLS = {"flat": {1: 80.0, 5: 95.5, 10: 97.25, 20: 100.0}}
IVFPQ = {"ivfpq": {1: 70.5, 5: 90.0, 10: 97.0, 20: 99.0}}
PROTOCOL = {
    "database": "database",
    "queries": "database",
    "n_database": 72,
    "threshold_m": 25.0,
    "model": {"backbone": "ResNet18", "fc_output_dim": 512},
    "checkpoint_sha256": "ab12cd34",
    "ivfpq": None,
    "timings": {"descriptors_s": 1.234, "search_flat_s": 0.01},
    "note": "<script>alert(1)</script> & co",
}


def report(tmp_path, manifest, predictions=None, **kw) -> Path:
    kw.setdefault("recalls", RECALLS)
    kw.setdefault("protocol", PROTOCOL)
    preds = make_predictions(manifest) if predictions is None else predictions
    return write_report(tmp_path / "out", predictions=preds, manifest=manifest, **kw)


def test_report_is_self_contained_valid_html(tmp_path, manifest):
    path = report(tmp_path, manifest)
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.html"]  # no temporary file left
    page = parse(path)
    raw = path.read_text(encoding="utf-8")
    assert page.counts["table"] == 3  # recalls, protocol, predictions
    assert page.counts["html"] == page.counts["head"] == page.counts["body"] == page.counts["title"] == 1
    # 1 map + 20 rows x (query + 5 predictions)
    assert len(page.imgs) == 1 + 20 * 6
    for img in page.imgs:
        decode(img["src"])
    srcs = [img["src"] for img in page.imgs]
    assert all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in srcs)
    assert "http" not in raw and "href" not in raw and "url(" not in raw and "<link" not in raw
    assert not any(str(Path(p).parent) in s for p in manifest.database for s in srcs)
    assert all(not v.startswith("/") for v in page.attr_values)
    # the map is a PNG; thumbnails are JPEG with their shorter side at thumb_size (128)
    assert decode(page.imgs[0]["src"]).format == "PNG" and page.imgs[0]["class"] == "map"
    for src in srcs[1:]:
        im = decode(src)
        assert im.format == "JPEG" and min(im.size) == 128


def test_rows_wrong_first_and_frames_match_is_positive(tmp_path, manifest):
    preds = make_predictions(manifest)
    page = parse(report(tmp_path, manifest, preds, num_preds_to_save=20, top_k=5))
    n = len(manifest.queries)
    wrong = sorted(wrong_ids(n))
    correct = [q for q in range(n) if q not in wrong_ids(n)]
    expected = (wrong + correct)[:20]
    assert len(wrong) == 14 and page.query_rows == expected
    # captions in the same order
    text = "".join(page.text)
    assert [int(x) for x in re.findall(r"query (\d+)", text)] == expected
    raw = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert raw.count('<span class="wrong">wrong</span> at R@1') == 14
    assert raw.count('<span class="correct">correct</span> at R@1') == 6

    shown = preds.filter(pa.compute.is_in(preds["query_idx"], pa.array(expected, pa.int32())))
    shown = shown.filter(pa.compute.less(shown["rank"], 5))
    n_pos = sum(shown["is_positive"].to_pylist())
    assert page.figures.count("pos") == n_pos
    assert page.figures.count("neg") == shown.num_rows - n_pos
    assert page.figures.count("query") == 20
    # rows: the rank-0 frame is red for the wrong queries, green for the others
    frames = [f for f in page.figures if f != "query"]
    firsts = frames[::5]
    assert firsts == ["neg"] * 14 + ["pos"] * 6


@pytest.mark.parametrize("num", [0, 1, 72, 200])
def test_number_of_rows(tmp_path, manifest, num):
    page = parse(report(tmp_path, manifest, num_preds_to_save=num, top_k=3, thumb_size=32))
    assert len(page.query_rows) == min(num, len(manifest.queries))
    assert len(set(page.query_rows)) == len(page.query_rows)
    assert page.figures.count("query") == len(page.query_rows)
    assert len(page.figures) == 4 * len(page.query_rows)


def test_top_k_larger_than_the_predictions(tmp_path, manifest):
    page = parse(report(tmp_path, manifest, make_predictions(manifest, k=2), num_preds_to_save=3, top_k=5))
    assert len(page.query_rows) == 3 and len(page.figures) == 3 * 3


def test_recall_table_and_loss_row(tmp_path, manifest):
    raw = report(tmp_path, manifest, recalls={**RECALLS, **IVFPQ}).read_text(encoding="utf-8")
    for v in ("80.00", "95.50", "97.25", "100.00", "70.50", "90.00", "97.00", "99.00"):
        assert f"<td>{v}</td>" in raw
    assert "recall lost" in raw
    lost = re.search(r'<tr class="loss">(.*?)</tr>', raw).group(1)
    assert re.findall(r"<td>([-\d.]+)</td>", lost) == ["9.50", "5.50", "0.25", "1.00"]
    for n in (1, 5, 10, 20):
        assert f"R@{n}<" in raw

    flat_only = report(tmp_path, manifest).read_text(encoding="utf-8")
    assert "recall lost" not in flat_only and "<td>97.25</td>" in flat_only


def test_recall_keys_from_json_are_strings(tmp_path, manifest):
    recalls = {"flat": {"1": 50.0, "5": 60.0}, "ivfpq": {"1": 40.0, "5": 60.0}}
    raw = report(tmp_path, manifest, recalls=recalls).read_text(encoding="utf-8")
    lost = re.search(r'<tr class="loss">(.*?)</tr>', raw).group(1)
    assert re.findall(r"<td>([-\d.]+)</td>", lost) == ["10.00", "0.00"]


def test_protocol_is_flattened_and_escaped(tmp_path, manifest):
    path = report(tmp_path, manifest)
    raw = path.read_text(encoding="utf-8")
    text = "".join(parse(path).text)
    assert "<script" not in raw and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in raw
    for key, value in [
        ("model.backbone", "ResNet18"),
        ("model.fc_output_dim", "512"),
        ("timings.descriptors_s", "1.234"),
        ("threshold_m", "25"),
        ("checkpoint_sha256", "ab12cd34"),
    ]:
        assert re.search(rf">{re.escape(key)}</th><td>{re.escape(value)}</td>", raw), key
    assert "ivfpq" in text


def test_missing_images_give_placeholders(tmp_path, manifest):
    preds = make_predictions(manifest)
    gone_q = "/nonexistent/folder/query_gone.jpg"
    db = list(manifest.database)
    first_pred = preds.filter(pa.compute.equal(preds["query_idx"], 2))["database_idx"][0].as_py()
    db[first_pred] = str(tmp_path / "db_gone.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    db[preds.filter(pa.compute.equal(preds["query_idx"], 7))["database_idx"][0].as_py()] = str(broken)
    queries = list(manifest.queries)
    queries[2] = gone_q  # query 2 is wrong, so it is the first row
    m = dataclasses.replace(manifest, database=db, queries=queries)
    page = parse(report(tmp_path, m, preds, num_preds_to_save=2))
    alts = [img["alt"] for img in page.imgs]
    assert "not available: query_gone.jpg" in alts
    assert "not available: db_gone.jpg" in alts
    assert "not available: broken.jpg" in alts
    placeholders = [img for img in page.imgs if img["alt"].startswith("not available")]
    assert len(placeholders) >= 3
    for img in placeholders:
        im = decode(img["src"]).convert("RGB")
        assert im.size == (128, 128)
        assert im.getpixel((127, 127)) == (190, 190, 190)  # grey
    assert "/nonexistent" not in "".join(img["src"] for img in page.imgs)


def test_map_shows_both_colours(tmp_path, manifest):
    # queries are the database here: 12 queries per place; make two places wrong, four right
    places = {q: int(p.min()) for q, p in enumerate(manifest.positives)}
    wrong = {q for q, first in places.items() if first in (places[0], places[71])}
    assert len(wrong) == 24
    page = parse(report(tmp_path, manifest, make_predictions(manifest, wrong=wrong), num_preds_to_save=0))
    assert [img["class"] for img in page.imgs] == ["map"]
    im = np.asarray(decode(page.imgs[0]["src"]).convert("RGB")).astype(int)

    def pixels(hex_colour: str) -> int:
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(im - rgb).sum(axis=2) < 30).sum())

    assert pixels(GREEN) > 40 and pixels(RED) > 20
    assert "48 correct at R@1, 24 wrong" in "".join(page.text)
    all_right = make_predictions(manifest, wrong=set())
    page = parse(report(tmp_path, manifest, all_right, num_preds_to_save=0))
    text = "".join(page.text)
    assert "72 correct at R@1, 0 wrong" in text


def test_manifest_without_coordinates_has_no_map(tmp_path, manifest):
    table = pq.read_table(manifest.path)
    stripped = tmp_path / "eval_nocoords.parquet"
    pq.write_table(
        table.drop_columns(["utm_east", "utm_north"]).replace_schema_metadata(table.schema.metadata), stripped
    )
    m = EvalManifest.read(stripped, image_roots=manifest.image_roots)  # a real read of the file without UTM
    assert m.database_utm is None and m.query_utm is None
    page = parse(report(tmp_path, m, num_preds_to_save=1))
    assert "map" not in [img.get("class") for img in page.imgs]
    assert "No map" in "".join(page.text)


def test_map_keeps_the_most_common_utm_zone(tmp_path, manifest):
    """Metres of two zones share no origin: the 12 database crops and 12 queries moved to another zone are left out."""
    db, qs = manifest.database_utm.copy(), manifest.query_utm.copy()
    assert len(np.unique(db[:, 2])) == 1 and np.isfinite(db).all()
    db[:12, 2] += 1
    qs[:12, 2] += 1
    m = dataclasses.replace(manifest, database_utm=db, query_utm=qs)
    page = parse(report(tmp_path, m, num_preds_to_save=0))
    assert [img["class"] for img in page.imgs] == ["map"]
    assert "24 images in other UTM zones are not shown." in "".join(page.text)


def test_bad_predictions_are_refused(tmp_path, manifest):
    preds = make_predictions(manifest)
    with pytest.raises(ValueError, match="is_positive"):
        report(tmp_path, manifest, preds.drop_columns(["is_positive"]))
    too_far = preds.set_column(0, "query_idx", pa.array([99] * preds.num_rows, pa.int32()))
    with pytest.raises(ValueError, match="query_idx"):
        report(tmp_path, manifest, too_far)
    with pytest.raises(ValueError):
        report(tmp_path, manifest, preds, num_preds_to_save=-1)


def test_recall_intervals_and_chance_level(tmp_path, manifest):
    intervals = {"flat": {"1": [75.125, 84.9], "5": [92.0, 98.5]}, "ivfpq": {1: [65.0, 76.0]}}
    protocol = {**PROTOCOL, "mean_positives": 12.0, "chance_level": 100 * 12 / 72, "n_database": 72}
    bootstrap = {
        "resamples": 2000,
        "seed": 0,
        "level": 0.95,
        "method": "percentile, queries resampled with replacement",
    }
    raw = report(
        tmp_path, manifest, recalls={**RECALLS, **IVFPQ}, protocol=protocol, intervals=intervals, bootstrap=bootstrap
    ).read_text(encoding="utf-8")
    assert '<td>80.00 <span class="ci">[75.1, 84.9]</span></td>' in raw
    assert '<td>95.50 <span class="ci">[92.0, 98.5]</span></td>' in raw
    assert '<td>70.50 <span class="ci">[65.0, 76.0]</span></td>' in raw
    assert "<td>97.25</td>" in raw and "<td>90.00</td>" in raw  # no interval given: the recall alone
    lost = re.search(r'<tr class="loss">(.*?)</tr>', raw).group(1)
    assert re.findall(r"<td>([-\d.]+)</td>", lost) == ["9.50", "5.50", "0.25", "1.00"]
    assert "Chance level 16.7% (mean 12.0 positives per query / 72 database images)" in raw
    assert "95% bootstrap intervals" in raw and "2000 resamples, seed 0" in raw
    plain = report(tmp_path, manifest).read_text(encoding="utf-8")  # an older protocol: no chance line
    assert "Chance level" not in plain and 'class="ci"' not in plain
