"""build-catalog from panoramas: values of the tables, bad input, resume, re-runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vgdata import geo
from vgdata.build import BuildConfig, build_catalog
from vgdata.catalog import Catalog
from vgdata.errors import UsageError
from vgdata.names import parse_name
from vgdata.schema import IMAGES, PANORAMAS


def read(cat: Path, table: str):
    return pq.read_table(sorted((cat / table).glob("*.parquet"))).to_pylist()


def test_build_from_panoramas_values(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1, shard_size=4))
    assert (r.panoramas, r.images, r.rejects, r.shards) == (6, 72, 0, 2)

    meta = {row["pano_id"]: row for row in csv.DictReader(csv_path.open())}
    images = read(cat, "images")
    panos = read(cat, "panoramas")
    assert pq.read_schema(next((cat / "images").glob("database-*.parquet"))).names == IMAGES.names
    assert [p["pano_id"] for p in panos] == sorted(meta)
    assert len({i["image_id"] for i in images}) == 72

    for p in panos:
        m = meta[p["pano_id"]]
        assert p["lat"] == float(m["lat"]) and p["lon"] == float(m["lon"])
        assert (p["width"], p["height_px"]) == (832, 416)
        utm = geo.latlon_to_utm(np.array([p["lat"]]), np.array([p["lon"]]))
        assert p["utm_east"] == pytest.approx(float(utm.east[0]), abs=1e-6)
        assert (p["utm_zone"], p["utm_letter"]) == (10, "S")
        assert p["timestamp"] == m["timestamp"] and p["year"] == int(m["timestamp"][:4])
        assert p["month"] == int(m["timestamp"][4:6]) and p["altitude"] == 12.5

    root = Catalog(cat).image_root("database")
    for img in images:
        pano = meta[img["pano_id"]]
        f = root / img["path"]
        assert f.is_file()
        with Image.open(f) as im:
            assert im.size == (128, 128) and im.format == "JPEG"
        n = parse_name(f.name)
        # The name carries the crop's heading floored (SF-XL style); the table keeps the exact azimuth.
        assert n.heading_deg == np.floor(img["heading"])
        assert n.pano_id == img["pano_id"] and n.timestamp == pano["timestamp"]
        assert n.east == pytest.approx(img["utm_east"], abs=0.005)
        assert img["path"].split("/")[0] == f"{int(float(pano['lat']) * 100) / 100:.2f}"
        assert (img["width"], img["height_px"]) == (128, 128)
    # Every panorama contributes exactly one crop to each 30-degree heading bin.
    for pid in meta:
        bins = sorted(int(i["heading"] // 30) for i in images if i["pano_id"] == pid)
        assert bins == list(range(12))

    build = json.loads((cat / "build.json").read_text())
    assert build["collections"]["database"]["counts"] == {"panoramas": 6, "images": 72, "rejects": 0}
    con = Catalog(cat).connect()
    assert con.sql("select count(*) from images").fetchall() == [(72,)]
    assert con.sql("select count(*) from panoramas").fetchall() == [(6,)]
    con.close()


def _write_csv(path: Path, rows: list[list[str]], header=("pano_id", "lat", "lon", "heading", "timestamp", "path")):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_bad_inputs_become_rejects_and_the_rest_is_built(raw_copy, tmp_path):
    pano_dir, _ = raw_copy
    good = sorted(p.stem for p in pano_dir.glob("*.jpg"))
    # Damage files: one truncated JPEG, one with the wrong aspect ratio.
    truncated = pano_dir / f"{good[1]}.jpg"
    truncated.write_bytes(truncated.read_bytes()[:2000])
    Image.new("RGB", (800, 416)).save(pano_dir / f"{good[2]}.jpg")
    (tmp_path / "outside.jpg").write_bytes((pano_dir / f"{good[0]}.jpg").read_bytes())
    rows = [
        [good[0], "37.77", "-122.42", "10", "201301", ""],  # valid
        [good[1], "37.77", "-122.42", "10", "201301", ""],  # truncated file
        [good[2], "37.77", "-122.42", "10", "201301", ""],  # wrong aspect ratio
        [good[3], "", "-122.42", "10", "201301", ""],  # missing lat
        [good[4], "abc", "-122.42", "10", "201301", ""],  # non-numeric lat
        [good[5], "37.77", "-122.42", "nan", "201301", ""],  # NaN heading
        ["p_far", "85.5", "-122.42", "10", "201301", f"{good[0]}.jpg"],  # out of UTM range
        [good[0], "37.78", "-122.42", "20", "201301", ""],  # duplicate pano_id
        ["p_out", "37.77", "-122.42", "10", "201301", "../outside.jpg"],  # path outside folder
        ["p_ts", "37.77", "-122.42", "10", "2013-13", f"{good[0]}.jpg"],  # bad timestamp
        ["p_missing", "37.77", "-122.42", "10", "2013-11-05T10:00:00Z", ""],  # file not found
        ["p_ok", "37.77", "-122.42", "370", "2013-11-05T10:00:00Z", f"{good[3]}.jpg"],  # valid, heading wraps
    ]
    csv_path = tmp_path / "meta.csv"
    _write_csv(csv_path, rows)
    cat = tmp_path / "cat"
    r = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1, shard_size=2))
    assert (r.panoramas, r.images) == (2, 24)
    assert r.rejects_by_reason == {
        "NaN heading": 1,
        "bad timestamp": 1,
        "duplicate pano_id": 1,
        "file not found": 1,
        "lat/lon out of range": 1,
        "missing value": 1,
        "non-numeric value": 1,
        "path outside folder": 1,
        "unreadable image": 1,
        "wrong aspect ratio": 1,
    }
    rejects = {(x["reason"], x["row"]) for x in read(cat, "rejects")}
    assert ("duplicate pano_id", 8) in rejects and ("missing value", 4) in rejects
    panos = {p["pano_id"]: p for p in read(cat, "panoramas")}
    assert sorted(panos) == sorted([good[0], "p_ok"])
    assert panos["p_ok"]["heading"] == 10.0 and panos["p_ok"]["timestamp"] == "20131105_100000"
    assert panos["p_ok"]["year"] == 2013 and panos["p_ok"]["month"] == 11


def test_usage_errors_are_one_line(tmp_path, raw_panos):
    pano_dir, csv_path = raw_panos
    with pytest.raises(UsageError, match="panoramas folder not found"):
        build_catalog(BuildConfig(tmp_path / "c", panoramas=tmp_path / "nope", metadata=csv_path))
    bad = tmp_path / "bad.csv"
    bad.write_text("pano_id,lat\nx,1\n")
    with pytest.raises(UsageError, match="lacks required column.*lon, heading, timestamp"):
        build_catalog(BuildConfig(tmp_path / "c", panoramas=pano_dir, metadata=bad))
    with pytest.raises(UsageError, match="exactly one of --panoramas"):
        build_catalog(BuildConfig(tmp_path / "c"))


def test_rerun_is_up_to_date_and_other_inputs_refused(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    cat = tmp_path / "cat"
    first = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    again = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    assert again.up_to_date and again.fingerprint == first.fingerprint
    with pytest.raises(UsageError, match="built from other inputs"):
        build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, quality=80))


@pytest.mark.slow
def test_two_workers_give_the_same_fingerprint_as_one(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    one = build_catalog(BuildConfig(tmp_path / "a", panoramas=pano_dir, metadata=csv_path, workers=1, shard_size=2))
    two = build_catalog(BuildConfig(tmp_path / "b", panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=2))
    assert one.fingerprint == two.fingerprint
    assert read(tmp_path / "a", "images") == read(tmp_path / "b", "images")


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(tmp_path):
    from raw_panoramas import make_raw_panoramas

    pano_dir, csv_path = make_raw_panoramas(tmp_path / "raw", n=40, width=1664, seed=3)
    ref = build_catalog(BuildConfig(tmp_path / "ref", panoramas=pano_dir, metadata=csv_path, workers=1, shard_size=1))

    cat = tmp_path / "cat"
    cmd = [sys.executable, "-m", "cli", "build-catalog", str(cat), "--panoramas", str(pano_dir)]
    cmd += ["--metadata", str(csv_path), "--workers", "2", "--shard-size", "1", "--json"]
    proc = subprocess.Popen(cmd, cwd=Path(__file__).parents[1], start_new_session=True, stdout=subprocess.DEVNULL)
    job_dir = cat / "_jobs" / "database"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(job_dir.glob("*.done"))) < 3:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(job_dir.glob("*.done")))
    assert 3 <= done_before < 40, "the build should have been interrupted part-way"
    assert not (cat / "build.json").exists()

    resumed = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=1))
    assert resumed.shards_skipped >= done_before
    assert resumed.fingerprint == ref.fingerprint
    assert (resumed.images, resumed.panoramas) == (480, 40)
    assert read(cat, "images") == read(tmp_path / "ref", "images")
    crops = sorted(p.relative_to(cat / "crops") for p in (cat / "crops").rglob("*") if p.is_file())
    assert len(crops) == 480 and not [c for c in crops if c.name.startswith(".tmp-")]
    # The keyed markers stay: they record what each shard was made from, for the next run.
    assert len(list((cat / "_jobs" / "database").glob("*.done"))) == 40
    again = build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=2, shard_size=1))
    assert again.up_to_date and again.fingerprint == ref.fingerprint


def test_schema_of_panoramas_table(raw_panos, tmp_path):
    pano_dir, csv_path = raw_panos
    build_catalog(BuildConfig(tmp_path / "c", panoramas=pano_dir, metadata=csv_path, workers=1))
    part = next((tmp_path / "c" / "panoramas").glob("database-*.parquet"))
    assert pq.read_schema(part).names == PANORAMAS.names


def test_provenance_beside_the_metadata_reaches_build_json(raw_copy, tmp_path):
    """synth --footprints writes provenance.json (source data, licence) beside its CSV: the catalog keeps it."""
    pano_dir, csv_path = raw_copy
    provenance = {"source": "hand-made.gpkg", "licence": "ODbL 1.0, (c) OpenStreetMap contributors"}
    (csv_path.parent / "provenance.json").write_text(json.dumps(provenance))
    cat = tmp_path / "cat"
    build_catalog(BuildConfig(cat, panoramas=pano_dir, metadata=csv_path, workers=1))
    source = json.loads((cat / "build.json").read_text())["collections"]["database"]["source"]
    assert source["provenance"] == provenance
    (csv_path.parent / "provenance.json").write_text("{not json")
    with pytest.raises(UsageError, match="provenance.json is not readable JSON"):
        build_catalog(BuildConfig(tmp_path / "cat2", panoramas=pano_dir, metadata=csv_path, workers=1))
