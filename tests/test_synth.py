"""The synthetic city end to end: determinism, ingestion, groups, origins, and a real task."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata import geo
from vgdata.build import BuildConfig, build_catalog, register_collection
from vgdata.catalog import Catalog
from vgdata.evalset import eval_set
from vgdata.fsio import atomic_write_table
from vgdata.groups import GroupsConfig, split_groups
from vgdata.panorama import strip_windows
from vgdata.schema import IMAGES, from_columns
from vgdata.synth import PRESETS, SynthConfig, synth
from vgdata.synth.generate import Frame, driven_streets, plan_captures, plan_queries
from vgdata.synth.scene import make_scene


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_outputs_and_readme(tiny):
    rows = list(csv.DictReader((tiny / "panoramas.csv").open()))
    assert list(rows[0]) == ["pano_id", "lat", "lon", "heading", "timestamp", "pitch", "roll", "altitude"]
    assert len(rows) == len(list((tiny / "panoramas").glob("*.jpg"))) > 10
    assert all(len(r["pano_id"]) == 22 for r in rows) and {r["timestamp"][:4] for r in rows} == {"2013", "2017"}
    with Image.open(tiny / "panoramas" / f"{rows[0]['pano_id']}.jpg") as im:
        assert im.size == (512, 256)
    readme = (tiny / "README.txt").read_text()
    assert "preset: tiny" in readme and "seed: 0" in readme and f"panoramas: {len(rows)}" in readme
    assert "vgdata-synth/3" in readme
    v1 = sorted((tiny / "queries_v1").glob("*.jpg"))
    assert len(v1) == PRESETS["tiny"].queries_v1
    gps = Image.open(v1[0]).getexif().get_ifd(0x8825)
    assert gps[1] == "N" and gps[3] == "W" and 17 not in gps  # lat/lon, no heading (GPSImgDirection)


@pytest.mark.slow
def test_same_seed_same_bytes_whatever_the_workers(tiny, tmp_path):
    again = tmp_path / "again"
    synth(SynthConfig(again, preset="tiny", seed=0, workers=2))
    assert tree_digest(again) == tree_digest(tiny)


def test_different_seeds_different_cities():
    a, b = make_scene(0, size_m=200), make_scene(1, size_m=200)
    assert [s.p0 for s in a.streets] != [s.p0 for s in b.streets]
    pa = plan_captures(a.streets, PRESETS["tiny"], 0)
    pb = plan_captures(b.streets, PRESETS["tiny"], 1)
    assert [(c.x, c.y) for c in pa] != [(c.x, c.y) for c in pb]


def test_ingested_with_no_special_case(tiny, tiny_catalog):
    build = json.loads((tiny_catalog / "build.json").read_text())
    counts = {c: v["counts"] for c, v in build["collections"].items()}
    n_panos = len(list((tiny / "panoramas").glob("*.jpg")))
    assert counts["database"] == {"panoramas": n_panos, "images": 12 * n_panos, "rejects": 0}
    assert counts["queries_v1"]["images"] == PRESETS["tiny"].queries_v1 and counts["queries_v1"]["rejects"] == 0
    assert counts["queries_v2"]["images"] == PRESETS["tiny"].queries_v2 and counts["queries_v2"]["rejects"] == 0
    for name in ("queries_v1", "queries_v2"):
        r = eval_set(tiny_catalog, name=name, database="database", queries=name)
        # Queries are taken within 30 m of a database panorama, so each has positives at 25 m or is close.
        assert r.n_queries == counts[name]["images"] and r.queries_without_positives < r.n_queries / 2
    con = Catalog(tiny_catalog).connect()
    v2 = con.sql("select heading, pitch, roll from images where collection = 'queries_v2'").fetchall()
    assert all(h is not None and 0 <= h < 360 for h, _, _ in v2)


def _register_plan(cat: Path, preset_name: str, seed: int, years: set[int] | None = None) -> int:
    """Catalog rows for every strip crop of a preset's capture plan (the rendered positions),
    of the given capture years (default: all)."""
    preset = PRESETS[preset_name]
    captures = plan_captures(make_scene(seed, size_m=preset.size_m).streets, preset, seed)
    captures = [c for c in captures if years is None or c.year in years]
    frame = Frame.at(37.7749, -122.4194)
    lat, lon = frame.latlon(np.array([c.x for c in captures]), np.array([c.y for c in captures]))
    utm = geo.latlon_to_utm(lat, lon)
    cols: dict[str, list] = {k: [] for k in ("image_id", "path", "collection", "utm_east", "utm_north", "heading")}
    for i, c in enumerate(captures):
        for k, win in enumerate(strip_windows(preset.width, preset.width // 2, c.heading)):
            cols["image_id"].append(12 * i + k)
            cols["path"].append(f"p{i:06d}_{k:02d}.jpg")
            cols["collection"].append("database")
            cols["utm_east"].append(float(utm.east[i]))
            cols["utm_north"].append(float(utm.north[i]))
            cols["heading"].append(win.heading)
    n = len(cols["path"])
    cols.update(utm_zone=[10] * n, utm_letter=["S"] * n)
    atomic_write_table(cat / "images" / "database-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, "database", image_root="crops/database", source={"plan": preset_name})
    return len(captures)


def test_demo_preset_has_at_least_8_cosplace_groups_in_its_training_years(tmp_path):
    preset = PRESETS["demo"]
    train_years = set(preset.years) - {preset.test_year}
    assert preset.test_year in preset.years and len(train_years) >= 4
    n = _register_plan(tmp_path / "cat", "demo", 0, train_years)
    streets = len(driven_streets(make_scene(0, size_m=preset.size_m).streets, preset))
    per_year = preset.drive_m / preset.spacing_m  # each street gives its length / spacing, +-1
    assert abs(n - len(train_years) * per_year) <= len(train_years) * streets
    # CosPlace's M=10, alpha=30, N=5, L=2 with the demo's min_images_per_class (EigenPlaces' 5): a class
    # of one 10 m cell and one 30 degree bin gets ~1 crop per panorama, 10 / 6.25 panoramas per year
    DEMO_MIN_IMAGES_PER_CLASS = 5  # runs/demo.py's --min-images-per-class (tests/test_demo.py pins it)

    assert len(train_years) * 10 / preset.spacing_m >= DEMO_MIN_IMAGES_PER_CLASS
    r = split_groups(GroupsConfig(tmp_path / "cat", min_images_per_class=DEMO_MIN_IMAGES_PER_CLASS))
    assert r.total_groups >= 8 and r.manifest_classes >= 8 * 20


def test_demo_preset_one_year_test_database_is_far_from_chance():
    """Every year drives the same streets; every query has panoramas of the test year within 25 m,
    and those are few against the test year's panoramas (chance at R@1 <= 3%)."""
    preset = PRESETS["demo"]
    scene = make_scene(0, size_m=preset.size_m)
    captures = plan_captures(scene.streets, preset, 0)
    xy = {y: np.array([(c.x, c.y) for c in captures if c.year == y]) for y in preset.years}
    test = xy[preset.test_year]
    test_spacing = preset.test_spacing_m or preset.spacing_m
    assert abs(len(test) - preset.drive_m / test_spacing) <= len(driven_streets(scene.streets, preset))
    for year, pts in xy.items():  # the same lanes every year: every panorama near one of the test year
        d = np.hypot(pts[:, None, 0] - test[None, :, 0], pts[:, None, 1] - test[None, :, 1]).min(axis=1)
        assert d.max() <= test_spacing, year
    for kind, n in (("v1", preset.queries_v1), ("v2", preset.queries_v2)):
        assert n >= 300
        plans = plan_queries(kind, n, captures, scene.streets, preset, 0)
        q = np.array([(p.x, p.y) for p in plans])
        within = (np.hypot(q[:, None, 0] - test[None, :, 0], q[:, None, 1] - test[None, :, 1]) <= 25.0).sum(axis=1)
        assert within.min() >= 1  # positives in the test year for every query
        assert within.mean() / len(test) <= 0.03, kind


@pytest.mark.parametrize(
    ("origin", "zone", "letter"),
    [((-33.8688, 151.2093), 56, "H"), ((60.3913, 5.3221), 32, "V"), ((37.7749, -122.4194), 10, "S")],
)
def test_origin_sets_zone_and_keeps_metres(tmp_path, origin, zone, letter):
    out = tmp_path / "meta"
    r = synth(SynthConfig(out, preset="tiny", seed=3, origin=origin, metadata_only=500))
    rows = list(csv.DictReader((out / "panoramas.csv").open()))
    assert r.panoramas == len(rows) == 500
    lat = np.array([float(x["lat"]) for x in rows])
    lon = np.array([float(x["lon"]) for x in rows])
    utm = geo.latlon_to_utm(lat, lon)
    assert set(utm.zone.tolist()) == {zone} and set(utm.letter.tolist()) == {letter}
    frame = Frame.at(*origin)
    x, y = utm.east - frame.east0, utm.north - frame.north0
    assert np.abs(x).max() < 2000 and np.abs(y).max() < 2000  # around the origin, in metres
    # Round trip through the CSV's 7-decimal lat/lon keeps positions within ~1 cm.
    la, lo = frame.latlon(x, y)
    assert np.abs(la - lat).max() < 1e-7 and np.abs(lo - lon).max() < 1e-7


@pytest.mark.slow
def test_bergen_rendered_origin_ingests_in_zone_32v(tmp_path):
    out = tmp_path / "bergen"
    synth(SynthConfig(out, preset="tiny", seed=4, origin=(60.3913, 5.3221), workers=1))
    r = build_catalog(
        BuildConfig(tmp_path / "cat", panoramas=out / "panoramas", metadata=out / "panoramas.csv", workers=1)
    )
    assert r.rejects == 0
    zones = pq.read_table(
        sorted((tmp_path / "cat" / "images").glob("database-*.parquet")), columns=["utm_zone", "utm_letter"]
    )
    assert set(zones.column("utm_zone").to_pylist()) == {32} and set(zones.column("utm_letter").to_pylist()) == {"V"}


def describe(path: Path) -> np.ndarray:
    """A fixed descriptor: HSV colour histogram + gradient-orientation histogram on a 2x2 grid."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB").resize((64, 64)), dtype=np.float32) / 255
        hsv = np.asarray(im.convert("RGB").resize((64, 64)).convert("HSV"), dtype=np.int32)
    hist = np.histogramdd(hsv.reshape(-1, 3) // np.array([32, 64, 64]), bins=(8, 4, 4), range=((0, 8), (0, 4), (0, 4)))[
        0
    ].ravel()
    gray = rgb.mean(axis=2)
    gx, gy = np.gradient(gray)
    mag, ang = np.hypot(gx, gy), (np.arctan2(gy, gx) % np.pi) / np.pi * 8
    grads = []
    for qy in range(2):
        for qx in range(2):
            sl = (slice(32 * qy, 32 * qy + 32), slice(32 * qx, 32 * qx + 32))
            grads.append(np.bincount(ang[sl].astype(int).ravel() % 8, weights=mag[sl].ravel(), minlength=8))
    vec = np.concatenate([hist / hist.sum(), np.concatenate(grads) / (np.sum(grads) + 1e-9)])
    return vec / np.linalg.norm(vec)


def test_retrieval_across_years_is_real_and_not_trivial(tiny_catalog):
    """Crops of 2017 retrieve 2013 crops of the same place and heading far above chance, below 100%."""
    con = Catalog(tiny_catalog).connect()
    rows = con.sql(
        "select path, utm_east, utm_north, heading, year from images where collection = 'database' order by path"
    ).fetchall()
    root = Catalog(tiny_catalog).image_root("database")
    db = [r for r in rows if r[4] == 2013]
    qs = [r for r in rows if r[4] == 2017]
    d_desc = np.stack([describe(root / r[0]) for r in db])
    hits, chance = [], []
    for q in qs:
        positive = np.array(
            [math.hypot(q[1] - d[1], q[2] - d[2]) <= 10 and geo.heading_difference(q[3], d[3]) <= 15 for d in db]
        )
        if not positive.any():
            continue
        best = int(np.argmax(d_desc @ describe(root / q[0])))
        hits.append(bool(positive[best]))
        chance.append(positive.mean())
    recall, chance_level = float(np.mean(hits)), float(np.mean(chance))
    print(f"recall@1 {recall:.3f} vs chance {chance_level:.3f} over {len(hits)} queries")
    assert len(hits) >= 50
    assert recall >= 5 * chance_level and recall >= 0.25
    assert recall <= 0.9


def test_cli_synth_metadata_only_and_bad_origin(tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        vgdata_app, ["synth", str(tmp_path / "o"), "--preset", "city", "--metadata-only", "2000", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["panoramas"] == 2000
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--origin", "north"])
    assert res.exit_code == 2 and "--origin must be LAT,LON" in res.output
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--origin", "91,0", "--metadata-only", "10"])
    assert res.exit_code == 2 and "outside UTM range" in res.output
    res = runner.invoke(vgdata_app, ["synth", str(tmp_path / "o"), "--preset", "huge"])
    assert res.exit_code == 2 and "unknown preset 'huge'" in res.output


def test_queries_look_along_or_across_the_street_never_at_the_near_facade():
    from vgdata.synth.generate import bearing, driven_streets, plan_captures, plan_queries
    from vgdata.synth.scene import make_scene

    preset = PRESETS["demo"]
    scene = make_scene(0, size_m=preset.size_m)
    captures = plan_captures(scene.streets, preset, 0)
    streets = [s for s, _, _ in driven_streets(scene.streets, preset)]
    plans = plan_queries("v2", 300, captures, scene.streets, preset, 0)

    def frame(s) -> tuple[float, float, float, float]:  # start and unit direction of a centre line
        (x0, y0), (x1, y1) = s.p0, s.p1
        return x0, y0, (x1 - x0) / math.dist(s.p0, s.p1), (y1 - y0) / math.dist(s.p0, s.p1)

    def offset(s, x: float, y: float) -> float:  # signed distance from the centre line, + to the right
        x0, y0, ux, uy = frame(s)
        return (x - x0) * uy - (y - y0) * ux  # (uy, -ux) is the right of (ux, uy)

    off_near_facade = []
    for q in plans:
        assert all(abs(offset(s, q.x, q.y)) >= s.width / 2 - 1e-3 for s in scene.streets)  # off every roadway
        # the streets by whose kerb the photographer may stand (two at a corner): one is the street
        by_kerb = [s for s in streets if abs(offset(s, q.x, q.y)) <= s.width / 2 + 1.0 + 1e-3]
        assert by_kerb
        off = []
        for s in by_kerb:
            _, _, ux, uy = frame(s)
            near_facade = (bearing(ux, uy) + (90 if offset(s, q.x, q.y) > 0 else -90)) % 360
            off.append(geo.heading_difference(q.heading, near_facade))
        off_near_facade.append(max(off))
    off = np.array(off_near_facade)
    assert off.min() >= 50.0 - 1e-6  # along +-40 at worst
    assert 0.2 < np.mean(off > 135) < 0.5  # about a third look across the street
