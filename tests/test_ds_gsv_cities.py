"""GSV-Cities in its own layout (FORMATS.md 2.5): Images/<City>/, Dataframes/<City>.csv -> one catalog."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import utm
from PIL import Image

from vgdata.build import BuildConfig, build_dataset

ROWS = {  # city -> (place_id, year, month, northdeg, lat, lon, panoid)
    "London": [
        (0, 2017, 6, 12, 51.5072, -0.1276, "abc_DEF-123"),
        (0, 2019, 11, 200, 51.50722, -0.12758, "x_y_z"),
        (3, 2012, 1, 359, 51.52, -0.1, "p3"),
    ],
    "Melbourne": [(7, 2020, 2, 90, -37.8136, 144.9631, "mel-7")],
}


def _name(city, place, year, month, north, lat, lon, pano) -> str:  # the loader's rule, FORMATS.md 2.5
    return f"{city}_{place:07d}_{year:04d}_{month:02d}_{north:03d}_{lat}_{lon}_{pano}.jpg"


def make_gsv_cities(root: Path) -> Path:
    (root / "Dataframes").mkdir(parents=True)
    for city, rows in ROWS.items():
        (root / "Images" / city).mkdir(parents=True)
        with (root / "Dataframes" / f"{city}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["place_id", "year", "month", "northdeg", "city_id", "lat", "lon", "panoid"])
            for place, year, month, north, lat, lon, pano in rows:
                w.writerow([place, year, month, north, city, lat, lon, pano])
                name = _name(city, place, year, month, north, lat, lon, pano)
                Image.new("RGB", (40, 30), (place * 20, month * 10, 50)).save(root / "Images" / city / name)
    # planted: a row whose image is missing, a row with a bad lat, an image without a row
    with (root / "Dataframes" / "Melbourne.csv").open("a", newline="") as f:
        csv.writer(f).writerows(
            [[8, 2020, 3, 10, "Melbourne", -37.81, 144.96, "gone"], [9, 2020, 3, 10, "Melbourne", "north", 1, "bad"]]
        )
    Image.new("RGB", (8, 8)).save(root / "Images" / "Melbourne" / "stray.jpg")
    return root


@pytest.fixture(scope="module")
def gsv_catalog(tmp_path_factory):
    root = make_gsv_cities(tmp_path_factory.mktemp("gsv") / "gsv-cities")
    cat = tmp_path_factory.mktemp("gsvcat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="gsv-cities", dataset_root=root, workers=1))
    return cat, root, results


def test_rows_positions_headings_times_places(gsv_catalog):
    cat, root, results = gsv_catalog
    assert [r.collection for r in results] == ["gsv_cities_train_database"]  # the default prefix
    images = pq.read_table(cat / "images").to_pylist()
    attrs = {r["image_id"]: r for r in pq.read_table(cat / "attributes").to_pylist()}
    by_pano = {r["pano_id"]: r for r in images}
    expected = [(city, *row) for city, rows in ROWS.items() for row in rows]
    assert sorted(by_pano) == sorted(e[-1] for e in expected)
    for city, place, year, month, north, lat, lon, pano in expected:
        r = by_pano[pano]
        e, n, zone, letter = utm.from_latlon(lat, lon)
        assert r["path"] == f"Images/{city}/{_name(city, place, year, month, north, lat, lon, pano)}"
        assert (r["lat"], r["lon"]) == (lat, lon)
        assert r["utm_east"] == pytest.approx(e, abs=1e-3) and r["utm_north"] == pytest.approx(n, abs=1e-3)
        assert (r["utm_zone"], r["utm_letter"]) == (zone, letter)
        assert r["utm_epsg"] == (32600 if lat >= 0 else 32700) + zone
        assert r["heading"] == float(north)
        assert (r["timestamp"], r["year"], r["month"]) == (f"{year:04d}{month:02d}", year, month)
        assert (r["width"], r["height_px"]) == (40, 30)
        a = attrs[r["image_id"]]
        assert (a["dataset"], a["split"], a["city"], a["place_id"]) == ("gsv-cities", "train", city, str(place))


def test_rejects_counted_by_reason(gsv_catalog):
    cat, root, results = gsv_catalog
    assert results[0].rejects_by_reason == {"bad metadata row": 1, "file not found": 1, "no metadata row": 1}
    rejects = pq.read_table(cat / "rejects").to_pylist()
    assert {Path(r["path"]).name for r in rejects if r["reason"] != "bad metadata row"} == {
        _name("Melbourne", 8, 2020, 3, 10, -37.81, 144.96, "gone"),
        "stray.jpg",
    }
    assert [r["row"] for r in rejects if r["reason"] == "bad metadata row"] == [3]


def test_places_are_same_place_id_per_city(gsv_catalog):
    """GT rule: same (city, place_id); London place 0 holds two images ~2 m apart, different years."""
    cat, _, _ = gsv_catalog
    images = {r["image_id"]: r for r in pq.read_table(cat / "images").to_pylist()}
    groups: dict[tuple, list] = {}
    for a in pq.read_table(cat / "attributes").to_pylist():
        groups.setdefault((a["city"], a["place_id"]), []).append(images[a["image_id"]]["pano_id"])
    assert sorted(groups[("London", "0")]) == ["abc_DEF-123", "x_y_z"]
    two = [images[i] for i in images if images[i]["pano_id"] in ("abc_DEF-123", "x_y_z")]
    d = np.hypot(two[0]["utm_east"] - two[1]["utm_east"], two[0]["utm_north"] - two[1]["utm_north"])
    assert 1.0 < d < 5.0


def test_cli_from_and_add_queries(gsv_catalog, tmp_path):
    """`--from DATASET DIR` on build-catalog (every collection) and add-queries (one); one-line errors."""
    import json

    from typer.testing import CliRunner

    from cli import vgdata_app

    _, root, _ = gsv_catalog
    runner = CliRunner()
    r = runner.invoke(vgdata_app, ["build-catalog", str(tmp_path / "c"), "--from", "gsv-cities", str(root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout[r.stdout.index("[") :])
    assert [(o["collection"], o["images"], o["rejects"]) for o in out] == [("gsv_cities_train_database", 4, 3)]
    r = runner.invoke(
        vgdata_app, ["add-queries", str(tmp_path / "q"), "--from", "gsv-cities", str(root), "--collection", "nope"]
    )
    assert (
        r.exit_code == 2 and "has no nope; have gsv_cities_train_database" in r.output and "Traceback" not in r.output
    )
    r = runner.invoke(vgdata_app, ["build-catalog", str(tmp_path / "c"), "--from", "gsv", str(root)])
    assert r.exit_code == 2 and "unknown dataset 'gsv'" in r.output and "gsv-cities" in r.output
    r = runner.invoke(vgdata_app, ["build-catalog", str(tmp_path / "c"), "--from", "gsv-cities", str(tmp_path / "no")])
    assert r.exit_code == 2 and "gsv-cities folder not found" in r.output


def test_symlink_out_of_the_dataset_is_refused(tmp_path):
    """A CSV row whose file is a symlink leading out of the dataset folder: a reject, never read."""
    root = make_gsv_cities(tmp_path / "gsv")
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (16, 16)).save(outside)
    city, place, year, month, north, lat, lon, pano = "London", 5, 2015, 4, 7, 51.5, -0.12, "linked"
    with (root / "Dataframes" / "London.csv").open("a", newline="") as f:
        csv.writer(f).writerow([place, year, month, north, city, lat, lon, pano])
    link = root / "Images" / city / _name(city, place, year, month, north, lat, lon, pano)
    link.symlink_to(outside)
    [r] = build_dataset(BuildConfig(tmp_path / "cat", dataset="gsv-cities", dataset_root=root, workers=1))
    assert r.images == 4 and r.rejects_by_reason["path outside folder"] == 1
    rejects = pq.read_table(tmp_path / "cat" / "rejects").to_pylist()
    assert [x["path"] for x in rejects if x["reason"] == "path outside folder"] == [str(link)]
