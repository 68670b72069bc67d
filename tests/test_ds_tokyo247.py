"""Tokyo 24/7 in its own layout (FORMATS.md 2.4): tokyo247.mat, 03814.../*.png, 247query_subset_v2/ + sidecars."""

from __future__ import annotations

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
from vgdata.sources import ds_tokyo247

E0, N0 = 381000.0, 3950000.0  # central Tokyo in UTM 54S, metres
PANO_A, PANO_B = "abcdefghijklmnopqrstuv", "A-b_C0123456789xyzABCD"  # 22-char panorama ids
DB = [  # (name in the .mat, east offset, north offset, suffix on disk or None when missing)
    (f"03814/{PANO_A}_012_000.jpg", 0.0, 0.0, ".png"),
    (f"03814/{PANO_A}_012_030.jpg", 0.0, 0.0, ".png"),
    (f"03814/{PANO_A}_012_330.jpg", 0.0, 0.0, ".png"),
    (f"03815/{PANO_B}_012_000.jpg", 40.0, 0.0, ".png"),
    (f"03815/{PANO_B}_012_090.jpg", 40.0, 0.0, ".jpg"),  # this one really is a .jpg
    (f"03815/{PANO_B}_012_180.jpg", 40.0, 0.0, None),  # missing under both suffixes
]
QUERIES = [  # (file, east offset, north offset, extra sidecar fields)
    ("00001.jpg", 0.0, 24.5, ["20140616", "day"]),  # 24.5 m from A, 47.2 m from B
    ("00002.jpg", 20.0, 0.0, ["20140616", "night"]),  # 20 m from both
    ("00003.jpg", 500.0, 0.0, []),  # no positive
]
NO_SIDECAR, BAD_SIDECAR = "00004.jpg", "00005.jpg"


def _cell(names: list) -> np.ndarray:
    out = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        out[i, 0] = n
    return out


def _mat(num_images: int = len(DB)) -> dict:
    return {
        "whichSet": "test",
        "dbImageFns": _cell([d[0] for d in DB]),
        "utmDb": np.array([[E0 + d[1] for d in DB], [N0 + d[2] for d in DB]]),
        "qImageFns": _cell([f"{q[0]}" for q in QUERIES]),
        "utmQ": np.array([[E0 + q[1] for q in QUERIES], [N0 + q[2] for q in QUERIES]]),
        "numImages": float(num_images),
        "numQueries": float(len(QUERIES)),
        "posDistThr": 25.0,
        "posDistSqThr": 625.0,
        "nonTrivPosDistSqThr": 100.0,
    }


def make_tokyo247(root: Path, *, num_images: int = len(DB)) -> Path:
    """A tiny Tokyo 24/7 tree; ``num_images`` other than len(DB) plants a bad .mat."""
    for name, _, _, suffix in DB:
        if suffix is not None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 32), (len(name), 5, 5)).save((root / name).with_suffix(suffix))
    Image.new("RGB", (24, 24)).save(root / "03815" / f"{'s' * 22}_012_060.png")  # named by no .mat row
    scipy.io.savemat(root / "tokyo247.mat", {"dbStruct": _mat(num_images)})
    q = root / "247query_subset_v2"
    q.mkdir()
    for name, de, dn, extra in QUERIES:
        Image.new("RGB", (32, 40), (1, 2, 3)).save(q / name)
        lat, lon = utm.to_latlon(E0 + de, N0 + dn, 54, "S")
        (q / name).with_suffix(".csv").write_text(", ".join([name, repr(float(lat)), repr(float(lon)), *extra]) + "\n")
    Image.new("RGB", (32, 40)).save(q / NO_SIDECAR)
    Image.new("RGB", (32, 40)).save(q / BAD_SIDECAR)
    (q / BAD_SIDECAR).with_suffix(".csv").write_text(f"{BAD_SIDECAR}, north, 139.7\n")
    return root


@pytest.fixture(scope="module")
def tokyo(tmp_path_factory):
    root = make_tokyo247(tmp_path_factory.mktemp("tokyo") / "tokyo247")
    cat = tmp_path_factory.mktemp("tokyocat") / "cat"
    results = build_dataset(BuildConfig(cat, dataset="tokyo247", prefix="", dataset_root=root, workers=1))
    return cat, root, results


def test_collections_and_rejects(tokyo):
    cat, root, results = tokyo
    assert [r.collection for r in results] == ["test_database", "test_queries"]
    assert [r.rejects_by_reason for r in results] == [
        {"file not found": 1, "no metadata row": 1},
        {"bad metadata row": 1, "no metadata row": 1},
    ]
    rejects = {(r["collection"], r["reason"]): r for r in pq.read_table(cat / "rejects").to_pylist()}
    assert Path(rejects[("test_database", "file not found")]["path"]) == root / DB[5][0]
    assert Path(rejects[("test_database", "no metadata row")]["path"]).name == f"{'s' * 22}_012_060.png"
    assert Path(rejects[("test_queries", "no metadata row")]["path"]).name == NO_SIDECAR
    assert rejects[("test_queries", "bad metadata row")]["path"] == "247query_subset_v2/00005.csv"


def test_database_rows(tokyo):
    cat, root, _ = tokyo
    images = {r["path"]: r for r in pq.read_table(cat / "images").to_pylist() if r["collection"] == "test_database"}
    attrs = {r["image_id"]: r for r in pq.read_table(cat / "attributes").to_pylist()}
    expected = {name[: -len(".jpg")] + suffix: (name, de, dn) for name, de, dn, suffix in DB if suffix}
    assert sorted(images) == sorted(expected)
    for path, (name, de, dn) in expected.items():
        r, a = images[path], attrs[images[path]["image_id"]]
        east, north = E0 + de, N0 + dn
        lat, lon = utm.to_latlon(east, north, 54, "S")
        assert (r["utm_east"], r["utm_north"], r["utm_zone"], r["utm_letter"], r["utm_epsg"]) == (
            east,
            north,
            54,
            "S",
            32654,
        )
        assert r["lat"] == pytest.approx(lat, abs=1e-7) and r["lon"] == pytest.approx(lon, abs=1e-7)
        assert 35.5 < r["lat"] < 35.8 and 139.5 < r["lon"] < 139.9  # Tokyo
        assert utm.from_latlon(r["lat"], r["lon"])[2:] == (54, "S")
        stem = name.rsplit("/", 1)[1][: -len(".jpg")]
        yaw = int(stem[-3:])
        assert (r["pano_id"], r["tile"], r["heading"], r["timestamp"]) == (stem[:22], yaw // 30, None, None)
        assert (a["dataset"], a["split"], a["tokyo247_yaw"], a["tokyo247_view_code"]) == (
            "tokyo247",
            "test",
            yaw,
            "012",
        )
        assert (a["source_east"], a["source_north"]) == (east, north)
        assert a["source_name"] == (None if path == name else name)
        assert a["tokyo247_pos_dist_thr"] is None
    resolved = [a["source_name"] for a in attrs.values() if a["collection"] == "test_database" and a["source_name"]]
    assert len(resolved) == 4  # .jpg in the .mat, .png on disk


def test_query_rows(tokyo):
    cat, root, _ = tokyo
    images = {r["path"]: r for r in pq.read_table(cat / "images").to_pylist() if r["collection"] == "test_queries"}
    attrs = {r["image_id"]: r for r in pq.read_table(cat / "attributes").to_pylist()}
    assert sorted(images) == [f"247query_subset_v2/{q[0]}" for q in QUERIES]
    for name, de, dn, extra in QUERIES:
        r = images[f"247query_subset_v2/{name}"]
        a = attrs[r["image_id"]]
        lat, lon = utm.to_latlon(E0 + de, N0 + dn, 54, "S")
        e, n, zone, letter = utm.from_latlon(lat, lon)
        assert (r["lat"], r["lon"]) == (float(lat), float(lon))
        assert r["utm_east"] == pytest.approx(e, abs=1e-3) and r["utm_north"] == pytest.approx(n, abs=1e-3)
        assert (r["utm_zone"], r["utm_letter"], r["utm_epsg"], r["heading"]) == (54, "S", 32654, None)
        assert (a["tokyo247_query_id"], a["tokyo247_query_fields"]) == (name, ",".join(extra))
        assert (a["source_east"], a["source_north"]) == (E0 + de, N0 + dn)  # utmQ of the .mat
        radii = (a["tokyo247_pos_dist_thr"], a["tokyo247_pos_dist_sq_thr"], a["tokyo247_non_triv_pos_dist_sq_thr"])
        assert radii == (25.0, 625.0, 100.0)
        assert (r["width"], r["height_px"]) == (32, 40)


def test_positives_equal_the_mat_rule(tokyo):
    """Eval set at posDistThr == brute force on the .mat's utmDb/utmQ (<= 25 m), over the files on disk."""
    cat, root, _ = tokyo
    s = scipy.io.loadmat(root / "tokyo247.mat")["dbStruct"][0, 0]
    thr = float(s["posDistThr"][0, 0])
    db_names = [str(c[0][0]) for c in s["dbImageFns"]]
    d = np.hypot(s["utmQ"][0][:, None] - s["utmDb"][0][None, :], s["utmQ"][1][:, None] - s["utmDb"][1][None, :])
    on_disk = {name: name[: -len(".jpg")] + suffix for name, _, _, suffix in DB if suffix}
    oracle = {
        "247query_subset_v2/" + str(c[0][0]): {
            on_disk[db_names[j]] for j in np.flatnonzero(d[i] <= thr) if db_names[j] in on_disk
        }
        for i, c in enumerate(s["qImageFns"])
    }
    r = eval_set(cat, name="tokyo", database="test_database", queries="test_queries", threshold=thr)
    rows = pq.read_table(r.manifest).to_pylist()
    db_path = {x["idx"]: x["path"] for x in rows if x["role"] == "database"}
    got = {x["path"]: {db_path[i] for i in x["positives"]} for x in rows if x["role"] == "query"}
    assert got == oracle
    assert [len(got[f"247query_subset_v2/{q[0]}"]) for q in QUERIES] == [3, 5, 0]


def test_bad_mat_is_one_reject_and_no_database(tmp_path):
    root = make_tokyo247(tmp_path / "t", num_images=len(DB) + 1)
    colls = ds_tokyo247.read(root)
    assert [c.name for c in colls] == ["test_queries"]
    bad = [r for r in colls[0].rejects if r[3] == "bad metadata file"]
    assert len(bad) == 1 and bad[0][1] == "tokyo247.mat" and "numImages is 7" in bad[0][4]
    assert colls[0].rows[0]["attrs"].get("tokyo247_pos_dist_thr") is None
    (root / "247query_subset_v2").rename(root / "elsewhere")
    with pytest.raises(UsageError, match="numImages is 7"):
        ds_tokyo247.read(root)
