"""Pittsburgh 30k/250k in its own layout (FORMATS.md 2.3): 000/..., queries_real/, datasets/*.mat dbStruct."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.io
import utm
from PIL import Image

from vgdata.build import BuildConfig, build_dataset
from vgdata.errors import UsageError
from vgdata.evalset import eval_set
from vgdata.sources import ds_pitts

E0, N0 = 584000.0, 4477000.0  # downtown Pittsburgh in UTM 17T, metres
PLACES = {"000000": (0.0, 0.0), "000001": (30.0, 0.0), "000002": (0.0, 60.0), "001000": (200.0, 200.0)}
DB = [  # (name, place) of the database images written to disk
    ("000/000000_pitch1_yaw1.jpg", "000000"),
    ("000/000000_pitch1_yaw2.jpg", "000000"),
    ("000/000000_pitch2_yaw12.jpg", "000000"),
    ("000/000001_pitch1_yaw1.jpg", "000001"),
    ("000/000002_pitch2_yaw1.jpg", "000002"),
    ("001/001000_pitch1_yaw1.jpg", "001000"),
]
MISSING = ("001/001001_pitch1_yaw3.jpg", "001000")  # named by pitts250k_test.mat, not on disk
QUERIES = [  # (name relative to queries_real/, east offset, north offset)
    ("000/000000_pitch1_yaw1.jpg", 15.0, 20.0),  # exactly 25 m from places 0 and 1 (inclusive)
    ("000/000001_pitch1_yaw5.jpg", 0.0, 35.5),  # 24.5 m from place 2, 35.5 m from place 0
    ("000/000002_pitch2_yaw3.jpg", 500.0, 500.0),  # no positive
]
THR = {"posDistThr": 25.0, "posDistSqThr": 625.0, "nonTrivPosDistSqThr": 100.0}


def _cell(names: list) -> np.ndarray:
    out = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        out[i, 0] = n
    return out


def _struct(which: str, db: list[tuple[str, str]], queries: list, *, extra: bool = False, num_images=None) -> dict:
    s = {"dataset": "pitts"} if extra else {}  # a leading extra field shifts every position: read by name
    s |= {
        "whichSet": which,
        "dbImageFns": _cell([n for n, _ in db]),
        "utmDb": np.array([[E0 + PLACES[p][0] for _, p in db], [N0 + PLACES[p][1] for _, p in db]]),
        "qImageFns": _cell([q[0] for q in queries]),
        "utmQ": np.array([[E0 + q[1] for q in queries], [N0 + q[2] for q in queries]]),
        "numImages": float(len(db) if num_images is None else num_images),
        "numQueries": float(len(queries)),
        **THR,
    }
    return s


def make_pitts(root: Path) -> Path:
    """A tiny Pittsburgh tree: a usable .mat (extra leading field), one with a wrong numImages, stray/missing images."""
    for name, _ in DB:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), (len(name), 40, 90)).save(root / name)
    for name, _, _ in QUERIES:
        (root / "queries_real" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 32), (10, 20, 30)).save(root / "queries_real" / name)
    Image.new("RGB", (24, 24)).save(root / "000" / "000009_pitch1_yaw1.jpg")  # named by no .mat
    Image.new("RGB", (24, 24)).save(root / "queries_real" / "000" / "000099_pitch1_yaw1.jpg")  # named by no .mat
    (root / "datasets").mkdir()
    mat = root / "datasets"
    s250 = _struct("test", [*DB, MISSING], QUERIES, extra=True)
    s250["dbImageFns"] = _cell([n for n, _ in [*DB, MISSING]] + [7.0])  # a name that is not text
    s250["utmDb"] = np.hstack([s250["utmDb"], [[E0], [N0]]])
    s250["numImages"] = float(len(DB) + 2)
    scipy.io.savemat(mat / "pitts250k_test.mat", {"dbStruct": s250})
    scipy.io.savemat(mat / "pitts30k_val.mat", {"dbStruct": _struct("val", DB[:2], QUERIES[:1], num_images=3)})
    return root


@pytest.fixture(scope="module")
def pitts(tmp_path_factory):
    root = make_pitts(tmp_path_factory.mktemp("pitts") / "pitts")
    cat = tmp_path_factory.mktemp("pittscat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="pitts", dataset_root=root, workers=1))
    return cat, root, results


def _view(name: str) -> tuple[str, int, int]:  # FORMATS.md 2.3: <place:06d>_pitch<p>_yaw<y>.jpg
    stem = name.rsplit("/", 1)[-1][: -len(".jpg")]
    place, pitch, yaw = stem.split("_")
    return place, int(pitch[len("pitch") :]), int(yaw[len("yaw") :])


def test_collections_and_rejects(pitts):
    cat, root, results = pitts
    assert [r.collection for r in results] == ["pitts250k_test_database", "pitts250k_test_queries"]
    assert [r.rejects_by_reason for r in results] == [
        {"bad metadata file": 1, "bad metadata row": 1, "file not found": 1, "no metadata row": 1},
        {"no metadata row": 1},
    ]
    rejects = pq.read_table(cat / "rejects").to_pylist()
    by_reason = {r["reason"]: r for r in rejects if r["collection"] == "pitts250k_test_database"}
    assert by_reason["bad metadata file"]["path"] == "datasets/pitts30k_val.mat"
    assert "numImages is 3" in by_reason["bad metadata file"]["detail"]
    assert Path(by_reason["file not found"]["path"]) == root / MISSING[0]
    assert Path(by_reason["no metadata row"]["path"]) == root / "000" / "000009_pitch1_yaw1.jpg"
    bad_row = next(r for r in rejects if r["reason"] == "bad metadata row")
    assert (bad_row["path"], bad_row["row"]) == ("datasets/pitts250k_test.mat", len(DB) + 2)


def test_rows_positions_views(pitts):
    cat, root, _ = pitts
    images = pq.read_table(cat / "images").to_pylist()
    attrs = {r["image_id"]: r for r in pq.read_table(cat / "attributes").to_pylist()}
    expected = {("pitts250k_test_database", n): PLACES[p] for n, p in DB}
    expected |= {("pitts250k_test_queries", "queries_real/" + n): (de, dn) for n, de, dn in QUERIES}
    got = {(r["collection"], r["path"]): r for r in images}
    assert sorted(got) == sorted(expected)
    for (coll, path), (de, dn) in expected.items():
        r, a = got[(coll, path)], attrs[got[(coll, path)]["image_id"]]
        east, north = E0 + de, N0 + dn
        lat, lon = utm.to_latlon(east, north, 17, "T")
        assert (r["utm_east"], r["utm_north"], r["utm_zone"], r["utm_letter"]) == (east, north, 17, "T")
        assert r["utm_epsg"] == 32617
        assert r["lat"] == pytest.approx(lat, abs=1e-7) and r["lon"] == pytest.approx(lon, abs=1e-7)
        assert 40.3 < r["lat"] < 40.6 and -80.1 < r["lon"] < -79.8  # Pittsburgh
        assert utm.from_latlon(r["lat"], r["lon"])[2:] == (17, "T")
        assert r["heading"] is None and r["timestamp"] is None and r["pitch"] is None
        place, pitch, yaw = _view(path)
        assert (r["pano_id"], r["tile"]) == (place, (pitch - 1) * 12 + (yaw - 1))
        assert (a["dataset"], a["split"], a["place_id"], a["pitts_pitch"], a["pitts_yaw"]) == (
            "pitts",
            "test",
            place,
            pitch,
            yaw,
        )
        assert (a["source_east"], a["source_north"]) == (east, north)
        radii = (a["pitts_pos_dist_thr"], a["pitts_pos_dist_sq_thr"], a["pitts_non_triv_pos_dist_sq_thr"])
        assert radii == ((25.0, 625.0, 100.0) if coll.endswith("queries") else (None, None, None))
        assert (r["width"], r["height_px"]) == ((24, 32) if coll.endswith("queries") else (32, 24))


def test_positives_equal_the_mat_rule(pitts):
    """Eval set at the .mat's posDistThr == brute force on its utmDb/utmQ (distance <= posDistThr)."""
    cat, root, _ = pitts
    struct = scipy.io.loadmat(root / "datasets" / "pitts250k_test.mat")["dbStruct"][0, 0]
    thr = float(struct["posDistThr"][0, 0])
    db_names = [str(c[0][0]) for c in struct["dbImageFns"]]
    q_names = ["queries_real/" + str(c[0][0]) for c in struct["qImageFns"]]
    d = np.hypot(
        struct["utmQ"][0][:, None] - struct["utmDb"][0][None, :],
        struct["utmQ"][1][:, None] - struct["utmDb"][1][None, :],
    )
    on_disk = {n for n, _ in DB}
    oracle = {
        q: {db_names[j] for j in np.flatnonzero(d[i] <= thr) if db_names[j] in on_disk} for i, q in enumerate(q_names)
    }
    r = eval_set(
        cat, name="pitts250k", database="pitts250k_test_database", queries="pitts250k_test_queries", threshold=thr
    )
    rows = pq.read_table(r.manifest).to_pylist()
    db_path = {x["idx"]: x["path"] for x in rows if x["role"] == "database"}
    got = {x["path"]: {db_path[i] for i in x["positives"]} for x in rows if x["role"] == "query"}
    assert got == oracle
    assert len(got["queries_real/000/000000_pitch1_yaw1.jpg"]) == 4  # the 25.0 m ties are positives


def test_unusable_mats_alone_are_a_one_line_error(tmp_path):
    (tmp_path / "datasets").mkdir()
    scipy.io.savemat(tmp_path / "datasets" / "pitts30k_val.mat", {"dbStruct": _struct("val", DB[:2], [], num_images=3)})
    (tmp_path / "datasets" / "pitts30k_train.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(UsageError, match=r"pitts30k_train.mat: not a readable .mat file.*numImages is 3"):
        ds_pitts.read(tmp_path)
    assert ds_pitts.read(tmp_path / "datasets") == []  # no datasets/ folder: not Pittsburgh


def test_missing_scipy_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "datasets").mkdir()
    scipy.io.savemat(tmp_path / "datasets" / "pitts30k_test.mat", {"dbStruct": _struct("test", DB, QUERIES)})
    monkeypatch.setitem(sys.modules, "scipy.io", None)  # as if the 'datasets' extra were not installed
    with pytest.raises(UsageError, match=r"pip install 'vgdata\[datasets\]'"):
        ds_pitts.read(tmp_path)
