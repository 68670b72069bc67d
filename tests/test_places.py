"""vgdata split-places: gsv-cities places (city, place_id) as training classes that vgtrain fit trains on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.build import BuildConfig, build_dataset
from vgdata.check import check_catalog
from vgdata.places import PlacesConfig, split_places
from vgtrain.manifest import GroupsManifest

MIN = 4
# city -> place_id -> images; London 3 and 10 test the numeric order, London 2 and Boston 7 are too small
PLACES = {"London": {3: 4, 10: 5, 2: 2}, "Melbourne": {0: 4}, "Boston": {7: 3, 1: 4}}


def _name(city, place, year, month, north, lat, lon, pano) -> str:  # the loader's rule, FORMATS.md 2.5
    return f"{city}_{place:07d}_{year:04d}_{month:02d}_{north:03d}_{lat}_{lon}_{pano}.jpg"


def make_places(root: Path) -> dict[tuple[str, str], set[str]]:
    """A gsv-cities folder of PLACES (plus an image no CSV row names); returns (city, place_id) -> image paths."""
    (root / "Dataframes").mkdir(parents=True)
    paths: dict[tuple[str, str], set[str]] = {}
    for c, (city, places) in enumerate(PLACES.items()):
        (root / "Images" / city).mkdir(parents=True)
        with (root / "Dataframes" / f"{city}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["place_id", "year", "month", "northdeg", "city_id", "lat", "lon", "panoid"])
            for place, n in places.items():
                for k in range(n):
                    lat, lon, pano = 10.0 + c + place * 0.01, 20.0 + k * 1e-5, f"{city[:3]}_{place}_{k}"
                    row = (place, 2015 + k, 1 + k, 30 * k, lat, lon, pano)
                    w.writerow([place, 2015 + k, 1 + k, 30 * k, city, lat, lon, pano])
                    name = _name(city, *row)
                    Image.new("RGB", (32, 24), (place * 20, k * 40, c * 60)).save(root / "Images" / city / name)
                    paths.setdefault((city, str(place)), set()).add(f"Images/{city}/{name}")
    Image.new("RGB", (8, 8)).save(root / "Images" / "Boston" / "stray.jpg")
    return paths


@pytest.fixture(scope="module")
def places_catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("gsvp") / "gsv-cities"
    paths = make_places(root)
    cat = tmp_path_factory.mktemp("placescat") / "cat"
    build_dataset(BuildConfig(cat, dataset="gsv-cities", prefix="", dataset_root=root, workers=1))
    r = split_places(PlacesConfig(cat, collection="train_database", min_images=MIN))
    return cat, paths, r, root


def test_manifest_rows_are_the_places_with_enough_images(places_catalog):
    cat, paths, r, root = places_catalog
    kept = sorted((k for k, v in paths.items() if len(v) >= MIN), key=lambda k: (k[0], int(k[1])))
    assert kept == [("Boston", "1"), ("London", "3"), ("London", "10"), ("Melbourne", "0")]
    assert (r.places, r.kept_places, r.manifest_images) == (len(paths), 4, sum(len(paths[k]) for k in kept))
    assert r.unplaced_images == 0  # the stray image is a reject, not an image
    table = pq.read_table(r.manifest)
    rows = table.to_pylist()
    assert {row["group_rank"] for row in rows} == {0}
    for class_index, place in enumerate(kept):
        mine = [row for row in rows if row["class_index"] == class_index]
        assert {row["path"] for row in mine} == paths[place]
        assert {(row["city"], row["place_id"], row["class_images"]) for row in mine} == {(*place, len(paths[place]))}
        assert {row["collection"] for row in mine} == {"train_database"}
    assert [(row["class_index"], row["image_id"]) for row in rows] == sorted(
        (row["class_index"], row["image_id"]) for row in rows
    )
    groups_cols = "group_rank class_index image_id collection path utm_east utm_north utm_zone utm_epsg heading"
    groups_cols += " class_e class_n class_h group_e group_n group_h"  # vgdata/groups.py's manifest columns
    assert table.column_names == [*groups_cols.split(), "city", "place_id", "class_images"]
    assert all(row[c] is None for row in rows for c in ("class_e", "class_n", "class_h", "group_e", "group_h"))
    meta = pq.read_schema(r.manifest).metadata
    params = json.loads(meta[b"vgdata.params"])
    assert meta[b"vgdata.kind"] == b"places" and params["kind"] == "places"
    assert (params["min_images"], params["collection"], params["groups_num"]) == (MIN, "train_database", 1)


def test_vgtrain_reads_it_as_one_group_of_places(places_catalog):
    cat, paths, r, root = places_catalog
    m = GroupsManifest.read(r.manifest)
    kept = sorted((k for k, v in paths.items() if len(v) >= MIN), key=lambda k: (k[0], int(k[1])))
    assert m.classes_per_group == [len(kept)]
    for cls, place in zip(m.groups[0], kept, strict=True):
        assert [Path(p).resolve() for p in cls] == sorted((root / p).resolve() for p in paths[place])


def test_check_runs_the_places_audits_and_finds_tampering(places_catalog, tmp_path):
    cat, _, r, _ = places_catalog
    report = check_catalog(cat)
    ours = {(x.audit, x.status) for x in report.results if x.subject == Path(r.manifest).name}
    assert ours == {("places_class_not_of_place", "ok"), ("places_kept_mismatch", "ok")}
    assert not any(x.audit.startswith("manifest_class") for x in report.results if x.subject.startswith("places_"))
    # tamper: move one image to another class, drop the last class
    table = pq.read_table(r.manifest)
    idx = table["class_index"].to_pylist()
    idx[0] = 1 if idx[0] != 1 else 2
    keep = [i for i, c in enumerate(table["class_index"].to_pylist()) if c != 3]
    bad = table.set_column(1, "class_index", pa.array(idx, pa.int32())).take(keep)
    bad_path = cat / "manifests" / "places_bad.parquet"
    pq.write_table(bad, bad_path)
    try:
        found = {x.audit: x for x in check_catalog(cat).results if x.subject == "places_bad.parquet"}
    finally:
        bad_path.unlink()
    assert found["places_class_not_of_place"].status == "failed" and found["places_class_not_of_place"].rows == 1
    mismatch = found["places_kept_mismatch"]
    assert mismatch.status == "failed"
    assert ("Melbourne", "0") in {(s[0], s[1]) for s in mismatch.sample}  # a kept place left out


def test_cli_json_names_and_errors(places_catalog):
    cat, _, _, _ = places_catalog
    runner = CliRunner()
    res = runner.invoke(
        vgdata_app,
        ["split-places", str(cat), "--collection", "train_database", "--min-images", "5", "--name", "big", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["kept_places"] == 1 and out["manifest"].endswith("manifests/places_big.parquet")
    assert {r["place_id"] for r in pq.read_table(out["manifest"]).to_pylist()} == {"10"}
    res = runner.invoke(vgdata_app, ["split-places", str(cat), "--collection", "train_database", "--min-images", "50"])
    assert res.exit_code == 1 and "smaller --min-images" in res.output and "Traceback" not in res.output
    res = runner.invoke(vgdata_app, ["split-places", str(cat), "--collection", "nope"])
    assert res.exit_code != 0 and "no collection 'nope'" in res.output
    res = runner.invoke(vgdata_app, ["split-places", str(cat), "--collection", "train_database", "--name", "a/b"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    (Path(cat) / "manifests" / "places_big.parquet").unlink()


@pytest.mark.slow
def test_vgtrain_fit_trains_one_classifier_row_per_place(places_catalog, tmp_path):
    import torch

    from vgdata.evalset import eval_set
    from vgtrain.fit import FitConfig, fit

    cat, paths, r, root = places_catalog
    val = eval_set(cat, name="places_val", database="train_database", queries="train_database", threshold=25)
    cfg = {"groups": r.manifest, "val": val.manifest, "out": str(tmp_path / "run"), "groups_num": 1}
    cfg |= {"image_size": 64, "batch_size": 4, "iterations_per_epoch": 2, "epochs_num": 1, "num_workers": 0}
    cfg |= {"device": "cpu", "fc_output_dim": 16, "infer_batch_size": 8, "val_image_size": 64}
    summary = fit(FitConfig(**cfg))
    assert len(summary["history"]) == 1
    state = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)
    assert [c["weight"].shape[0] for c in state["classifiers"]] == [sum(len(v) >= MIN for v in paths.values())]
