"""`vgdata split-groups --panorama-fraction F --fraction-seed S --years Y,..`: classes and groups of a subset.

The subset rule is recomputed here from its documented formula (vgdata.groups.FRACTION_RULE, written out
again below with hashlib, not imported), the classes with numpy floors, on the tiny synthetic catalog.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.groups import GroupsConfig, manifest_name, split_groups

runner = CliRunner()
M, ALPHA, N, L = 10.0, 30.0, 5, 2


def unit_u(pano_id: str | None, image_id: int, seed: int) -> float:
    """The documented rule: key 'p:' + pano_id ('i:' + image_id without one); u = first 52 bits of
    md5(f'{seed}:{key}') / 2**52; a unit is kept iff u < F."""
    key = f"p:{pano_id}" if pano_id is not None else f"i:{image_id}"
    return int(hashlib.md5(f"{seed}:{key}".encode()).hexdigest()[:13], 16) / 2**52


@pytest.fixture(scope="module")
def cat(tiny_catalog, tmp_path_factory) -> Path:
    """A private copy of the tiny catalog (the manifests written here stay out of the shared one)."""
    dst = tmp_path_factory.mktemp("fraction") / "cat"
    shutil.copytree(tiny_catalog, dst, ignore=shutil.ignore_patterns("_jobs"))
    return dst


@pytest.fixture(scope="module")
def images(cat) -> dict[str, np.ndarray]:
    """The database images, read from the catalog's Parquet parts (not through vgdata's SQL)."""
    parts = [pq.read_table(p) for p in sorted((cat / "images").glob("database-*.parquet"))]
    t = pa.concat_tables(parts)
    cols = ("image_id", "pano_id", "utm_east", "utm_north", "utm_epsg", "heading", "year")
    return {c: np.array(t.column(c).to_pylist(), dtype=object if c == "pano_id" else None) for c in cols}


def run_all_groups(cat: Path, mipc: int = 1, **subset) -> tuple[dict, pa.Table]:
    """split-groups over every group (so the manifest holds every kept image): the result and its rows."""
    probe = split_groups(GroupsConfig(cat, min_images_per_class=mipc, groups_num=1, **subset))
    r = split_groups(GroupsConfig(cat, min_images_per_class=mipc, groups_num=probe.total_groups, **subset))
    return r.to_dict(), pq.read_table(r.manifest)


def panoramas_of(table: pa.Table, images: dict[str, np.ndarray]) -> set[str]:
    pano = dict(zip(images["image_id"].tolist(), images["pano_id"].tolist(), strict=True))
    return {pano[i] for i in table.column("image_id").to_pylist()}


def expected_panoramas(images: dict[str, np.ndarray], fraction: float, seed: int) -> set[str]:
    return {p for p, i in zip(images["pano_id"], images["image_id"], strict=True) if unit_u(p, int(i), seed) < fraction}


def test_half_fraction_holds_exactly_the_hashed_panoramas(cat, images):
    everything, _ = run_all_groups(cat)
    r, rows = run_all_groups(cat, panorama_fraction=0.5, fraction_seed=0)
    want = expected_panoramas(images, 0.5, 0)
    all_panos = set(images["pano_id"])
    assert 0 < len(want) < len(all_panos) == 24  # the tiny city: 24 panoramas of 12 crops
    assert panoramas_of(rows, images) == want
    # whole panoramas: every crop of a chosen one, nothing else
    chosen = {int(i) for i, p in zip(images["image_id"], images["pano_id"], strict=True) if p in want}
    assert set(rows.column("image_id").to_pylist()) == chosen
    assert r["manifest_images"] == len(chosen) < everything["manifest_images"] == len(images["image_id"])
    assert r["params"]["panorama_fraction"] == 0.5 and r["params"]["fraction_seed"] == 0
    assert Path(r["manifest"]).name.startswith("groups_M10_a30_N5_L2_mipc1_g") and "_f0.5s0_" in r["manifest"]
    meta = pq.read_schema(r["manifest"]).metadata
    assert json.loads(meta[b"vgdata.params"]) == r["params"]


def test_quarter_is_inside_half_and_the_seed_matters(cat, images):
    _, quarter = run_all_groups(cat, panorama_fraction=0.25, fraction_seed=0)
    _, half = run_all_groups(cat, panorama_fraction=0.5, fraction_seed=0)
    _, other = run_all_groups(cat, panorama_fraction=0.5, fraction_seed=1)
    q, h, o = (panoramas_of(t, images) for t in (quarter, half, other))
    assert q == expected_panoramas(images, 0.25, 0) and 0 < len(q) < len(h)
    assert q <= h
    assert o == expected_panoramas(images, 0.5, 1) != h


def test_classes_of_the_subset_are_numpy_floors(cat, images):
    """mipc 2 on the 0.5 subset: kept classes, their sizes and groups equal numpy's floors over the subset."""
    mipc = 2
    r, rows = run_all_groups(cat, mipc=mipc, panorama_fraction=0.5, fraction_seed=0)
    want = expected_panoramas(images, 0.5, 0)
    sel = np.array([p in want for p in images["pano_id"]])
    e, n, h = images["utm_east"][sel], images["utm_north"][sel], np.mod(images["heading"][sel], 360.0)
    keys = zip(
        images["utm_epsg"][sel].tolist(),
        np.floor_divide(e, M).astype(int).tolist(),
        np.floor_divide(n, M).astype(int).tolist(),
        np.floor_divide(h, ALPHA).astype(int).tolist(),
        strict=True,
    )
    counts = Counter(keys)
    kept = {k: c for k, c in counts.items() if c >= mipc}
    assert 0 < len(kept) < len(counts)  # some classes dropped, some kept
    got = Counter(
        zip(*(rows.column(c).to_pylist() for c in ("utm_epsg", "class_e", "class_n", "class_h")), strict=True)
    )
    assert dict(got) == kept
    for ce, cn, ch, ge, gn, gh in zip(
        *(rows.column(c).to_pylist() for c in ("class_e", "class_n", "class_h", "group_e", "group_n", "group_h")),
        strict=True,
    ):
        assert (ge, gn, gh) == (ce % N, cn % N, ch % L)  # Python's % is the floor-mod
    assert r["manifest_classes"] == len(kept)


def test_years_keep_only_those_years_and_combine_with_a_fraction(cat, images):
    years = sorted(set(images["year"].tolist()))
    assert len(years) >= 2
    first = years[0]
    r, rows = run_all_groups(cat, years=(first,))
    of_year = {int(i) for i, y in zip(images["image_id"], images["year"], strict=True) if y == first}
    assert set(rows.column("image_id").to_pylist()) == of_year and 0 < len(of_year) < len(images["image_id"])
    assert r["params"]["years"] == [first] and f"_y{first}_" in Path(r["manifest"]).name
    r2, both = run_all_groups(cat, years=(first,), panorama_fraction=0.5, fraction_seed=0)
    want = expected_panoramas(images, 0.5, 0)
    chosen = {
        int(i) for i, y, p in zip(images["image_id"], images["year"], images["pano_id"], strict=True)
        if y == first and p in want
    }  # fmt: skip
    assert set(both.column("image_id").to_pylist()) == chosen
    assert Path(r2["manifest"]).name != Path(r["manifest"]).name


def test_whole_collection_keeps_todays_params_name_and_file(cat):
    base = GroupsConfig(cat, min_images_per_class=1, groups_num=2)
    one = GroupsConfig(cat, min_images_per_class=1, groups_num=2, panorama_fraction=1.0, fraction_seed=7)
    assert one.params() == base.params() == {
        "M": 10, "alpha": 30, "N": 5, "L": 2, "min_images_per_class": 1, "groups_num": 2, "collection": "database",
    }  # fmt: skip
    assert manifest_name(one, "f" * 40) == manifest_name(base, "f" * 40) == "groups_M10_a30_N5_L2_mipc1_g2_ffffffffffff"
    a = split_groups(base)
    data = Path(a.manifest).read_bytes()
    b = split_groups(one)
    assert b.manifest == a.manifest and b.reused and Path(b.manifest).read_bytes() == data
    names = {
        manifest_name(GroupsConfig(cat, panorama_fraction=f, fraction_seed=s, years=y), "0" * 40)
        for f, s, y in ((0.5, 0, None), (0.25, 0, None), (0.5, 1, None), (0.5, 0, (2013,)), (1.0, 0, (2013,)))
    }
    assert len(names) == 5


def test_check_passes_on_subset_manifests_and_audits_with_their_subset(cat, images, tmp_path):
    """`vgdata check` recomputes classes with each manifest's recorded subset: passes on what split-groups wrote;
    the same rows recorded with another subset (the whole collection, F = 0.25, one year) fail
    manifest_class_mismatch (every group shipped, so the class tables differ)."""
    years = sorted(set(images["year"].tolist()))  # every year: the same images, another name
    assert len(years) >= 2
    args = ["split-groups", str(cat), "--min-images-per-class", "1", "--panorama-fraction", "0.5",
            "--fraction-seed", "0", "--years", ",".join(map(str, years)), "--json"]  # fmt: skip
    probe = runner.invoke(vgdata_app, [*args, "--groups-num", "1"])
    assert probe.exit_code == 0, probe.output
    r = runner.invoke(vgdata_app, [*args, "--groups-num", str(json.loads(probe.output)["total_groups"])])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {"manifest", "groups", "total_groups", "manifest_images", "manifest_classes", "reused", "params"}
    assert out["params"]["years"] == years and f"_f0.5s0_y{'-'.join(map(str, years))}_" in out["manifest"]
    report = runner.invoke(vgdata_app, ["check", str(cat), "--json"])
    assert report.exit_code == 0, report.output
    mine = [x for x in json.loads(report.output)["results"] if x["subject"] == Path(out["manifest"]).name]
    assert len(mine) >= 9 and all(x["status"] == "ok" for x in mine)

    broken = tmp_path / "cat"
    shutil.copytree(cat, broken, ignore=shutil.ignore_patterns("_jobs"))
    for p in (broken / "manifests").glob("groups_*.parquet"):
        p.unlink()
    table = pq.read_table(out["manifest"])
    meta = dict(table.schema.metadata)
    params = json.loads(meta[b"vgdata.params"])
    whole = {k: v for k, v in params.items() if k not in ("panorama_fraction", "fraction_seed", "years")}
    lies = {"whole": whole, "quarter": {**params, "panorama_fraction": 0.25}, "year": {**params, "years": years[:1]}}
    for name, lie in lies.items():
        meta[b"vgdata.params"] = json.dumps(lie).encode()
        pq.write_table(table.replace_schema_metadata(meta), broken / "manifests" / f"groups_{name}.parquet")
    report = runner.invoke(vgdata_app, ["check", str(broken), "--json"])
    assert report.exit_code == 1
    failed = {(x["subject"], x["audit"]) for x in json.loads(report.output)["results"] if x["status"] == "failed"}
    assert {(f"groups_{name}.parquet", "manifest_class_mismatch") for name in lies} <= failed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--panorama-fraction", "0"], "error: --panorama-fraction must be a number in (0, 1], got 0.0"),
        (["--panorama-fraction", "1.5"], "error: --panorama-fraction must be a number in (0, 1], got 1.5"),
        (["--years", "1999"], "error: --years: no image of collection 'database' was taken in 1999; its years are"),
        (["--years", "2013,abc"], "error: --years must be comma-separated whole years"),
    ],
)
def test_bad_subset_options_are_one_line_errors(cat, args, message):
    r = runner.invoke(vgdata_app, ["split-groups", str(cat), "--min-images-per-class", "1", *args])
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.output


def test_bad_fraction_in_a_real_process_has_no_traceback(cat):
    p = subprocess.run(
        [sys.executable, "-c", "from cli import vgdata_app; vgdata_app()", "split-groups", str(cat),
         "--panorama-fraction", "-0.5"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
    )  # fmt: skip
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip() == "error: --panorama-fraction must be a number in (0, 1], got -0.5"


@pytest.mark.parametrize("subset", [{}, {"panorama_fraction": 0.5, "fraction_seed": 3}])
def test_large_manifest_path_writes_the_same_file(cat, monkeypatch, subset):
    """Above LARGE_MANIFEST_ROWS the manifest is materialised, then sorted on one thread: the same rows in order."""
    import vgdata.groups as groups_module

    config = GroupsConfig(cat, min_images_per_class=1, groups_num=2, **subset)
    direct = split_groups(config)
    expected = pq.read_table(direct.manifest)
    Path(direct.manifest).unlink()
    monkeypatch.setattr(groups_module, "LARGE_MANIFEST_ROWS", 0)
    two_step = split_groups(config)
    assert two_step.manifest == direct.manifest and not two_step.reused
    got = pq.read_table(two_step.manifest)
    # the same names, types, rows and order; Parquet may mark more columns required (no nulls known)
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
    assert got.num_rows == expected.num_rows > 0 and got.cast(expected.schema).equals(expected)
    assert got.schema.metadata[b"vgdata.params"] == expected.schema.metadata[b"vgdata.params"]
