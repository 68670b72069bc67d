"""CosPlace classes and groups in SQL against an independent reference (REFERENCE.md b.1-b.2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vgdata.build import register_collection
from vgdata.catalog import Catalog
from vgdata.errors import VgdataError
from vgdata.fsio import atomic_write_table
from vgdata.groups import GroupsConfig, split_groups
from vgdata.names import make_name
from vgdata.schema import IMAGES, from_columns


def cosplace_reference(rows, M=10, alpha=30, N=5, L=2, mipc=10):
    """CosPlace's procedure, written from REFERENCE.md b.1-b.2: Python floors over sorted paths.

    ``rows``: (path, east, north, heading). Returns {path: (class_id, group_id, kept, group_rank)}.
    """
    info = {}
    images_per_class: dict[tuple, list[str]] = {}
    for path, e, n, h in sorted(rows):
        class_id = (int(e // M * M), int(n // M * M), int(h // alpha * alpha))
        group_id = (class_id[0] % (M * N) // M, class_id[1] % (M * N) // M, class_id[2] % (alpha * L) // alpha)
        info[path] = (class_id, group_id)
        images_per_class.setdefault(class_id, []).append(path)
    kept = {c for c, paths in images_per_class.items() if len(paths) >= mipc}
    order: list[tuple] = []
    for path, *_ in sorted(rows):
        class_id, group_id = info[path]
        if class_id in kept and group_id not in order:
            order.append(group_id)
    return {p: (c, g, c in kept, order.index(g) if c in kept else None) for p, (c, g) in info.items()}


def make_corpus(seed: int = 0, n_panos: int = 1500) -> list[tuple[str, float, float, float]]:
    """SF-like crops: clustered positions, 12 headings per panorama, plus edge cases."""
    rng = np.random.default_rng(seed)
    base_e, base_n = 543_000.0, 4_180_000.0
    centres = rng.uniform(0, 400, size=(60, 2))
    rows = []
    for i in range(n_panos):
        c = centres[i % len(centres)]
        e = round(base_e + c[0] + rng.normal(0, 6), 2)
        n = round(base_n + c[1] + rng.normal(0, 6), 2)
        if i % 7 == 0:
            e = base_e + 10 * round(c[0] / 10)  # exactly on a cell line
        if i % 11 == 0:
            n = base_n + 10 * round(c[1] / 10) - 0.01  # just below a cell line
        offset = rng.uniform(0, 30) if i % 5 else 0.0  # some crops exactly on bin edges
        for k in range(12):
            h = round((30 * k + offset) % 360, 2)
            if i % 13 == 0 and k == 11:
                h = 359.99
            rows.append((e, n, h, f"p{i:05d}"))
    out = []
    for e, n, h, pano in rows:
        name = make_name(utm_east=e, utm_north=n, utm_zone=10, utm_letter="S", lat=37.7, lon=-122.4,
                         pano_id=pano, heading=h, timestamp="201306")  # fmt: skip
        out.append((f"37.7{int(n) % 3}/{name}", e, n, h))
    return out


def register(cat: Path, rows, collection: str = "database") -> None:
    cols = {
        "image_id": list(range(len(rows))),
        "path": [r[0] for r in rows],
        "collection": [collection] * len(rows),
        "utm_east": [r[1] for r in rows],
        "utm_north": [r[2] for r in rows],
        "utm_zone": [10] * len(rows),
        "utm_letter": ["S"] * len(rows),
        "heading": [r[3] for r in rows],
        "lat": [37.7] * len(rows),
        "lon": [-122.4] * len(rows),
    }
    atomic_write_table(cat / "images" / f"{collection}-000000.parquet", from_columns(IMAGES, cols))
    register_collection(cat, collection, image_root=f"crops/{collection}", source={"generated": True})


@pytest.fixture(scope="module")
def corpus_catalog(tmp_path_factory):
    cat = tmp_path_factory.mktemp("groups") / "cat"
    rows = make_corpus()
    register(cat, rows)
    return cat, rows


@pytest.mark.parametrize(("M", "alpha", "N", "L", "mipc"), [(10, 30, 5, 2, 10), (15, 45, 3, 2, 5), (10, 30, 5, 12, 1)])
def test_classes_groups_kept_and_rank_equal_cosplace(corpus_catalog, M, alpha, N, L, mipc):
    cat, rows = corpus_catalog
    ref = cosplace_reference(rows, M, alpha, N, L, mipc)
    con = Catalog(cat).connect()
    classes = con.sql(f"select path, class_e, class_n, class_h from cosplace_classes(m := {M}, alpha := {alpha})")
    ours = {p: (e, n, h) for p, e, n, h in classes.fetchall()}
    groups = con.sql(
        f"select path, group_e, group_n, group_h, group_rank from cosplace_groups(m := {M}, alpha := {alpha}, "
        f"n := {N}, l := {L}, min_images_per_class := {mipc})"
    )
    kept = {p: (g, r) for p, *g, r in groups.fetchall()}
    con.close()
    assert len(ours) == len(rows)
    for path, (class_id, group_id, is_kept, rank) in ref.items():
        e, n, h = ours[path]
        assert (e * M, n * M, h * alpha) == class_id, path
        assert (path in kept) == is_kept, path
        if is_kept:
            assert tuple(kept[path][0]) == group_id and kept[path][1] == rank, path
    assert sum(v[2] for v in ref.values()) == len(kept) > 0


def test_corpus_has_the_edge_cases(corpus_catalog):
    _, rows = corpus_catalog
    assert any(e % 10 == 0 for _, e, _, _ in rows)
    assert any(round(n % 10, 2) == 9.99 for _, _, n, _ in rows)
    assert any(h % 30 == 0 and h > 0 for *_, h in rows) and any(h == 359.99 for *_, h in rows)


def test_headings_outside_0_360_are_wrapped(tmp_path):
    """A documented difference: CosPlace makes 360 its own class (12); we wrap it to 0."""
    rows = [(f"a{i:02d}.jpg", 543_005.0, 4_180_005.0, h) for i, h in enumerate([360.0, -30.0, 0.0, 725.0])]
    register(tmp_path / "cat", rows)
    con = Catalog(tmp_path / "cat").connect()
    got = dict(con.sql("select path, class_h from cosplace_classes()").fetchall())
    assert got == {"a00.jpg": 0, "a01.jpg": 11, "a02.jpg": 0, "a03.jpg": 0}
    assert cosplace_reference(rows[:1], mipc=1)["a00.jpg"][0][2] == 360  # what CosPlace does
    exact = con.sql("select floor_div(19.999999999999996, 10), floor_div(-0.5, 10), floor_mod(-3, 5)").fetchall()
    assert exact == [(1, -1, 2)]


@pytest.mark.parametrize(("M", "alpha", "N", "L", "mipc"), [(10, 30, 5, 2, 10), (15, 45, 3, 2, 5), (10, 30, 5, 12, 1)])
def test_every_groups_audit_passes_on_what_shipped(corpus_catalog, M, alpha, N, L, mipc):
    """split-groups runs the groups audits at its end on its class table and the manifest it wrote; rerun them
    here on exactly those (the macro with the manifest's parameters, the file itself) and list them."""
    from vgdata.check import audit_groups, load_audits

    cat, _ = corpus_catalog
    config = GroupsConfig(cat, m=M, alpha=alpha, n=N, l=L, min_images_per_class=mipc, groups_num=2)
    r = split_groups(config)
    con = Catalog(cat).connect()
    con.execute(
        f"create temp table kept as from cosplace_kept_classes(m := {M}, alpha := {alpha}, n := {N}, l := {L}, "
        f"min_images_per_class := {mipc})"
    )
    results = audit_groups(con, "kept", Path(r.manifest), r.params)
    con.close()
    names = {a.name for a in load_audits() if a.needs == "groups"}
    assert {x.audit for x in results} == names and len(names) >= 9
    assert all(x.status == "ok" and x.rows == 0 for x in results)


@pytest.mark.parametrize(("M", "alpha", "N", "L", "mipc"), [(10, 30, 5, 2, 10), (15, 45, 3, 2, 5)])
def test_manifest_macro_is_the_audited_macros(corpus_catalog, M, alpha, N, L, mipc):
    """groups_manifest() in one call, its two-step form split-groups runs, and the written file agree row for row;
    its rows are cosplace_groups()' rows of the first groups, its summary is cosplace_summary()."""
    cat, _ = corpus_catalog
    r = split_groups(GroupsConfig(cat, m=M, alpha=alpha, n=N, l=L, min_images_per_class=mipc, groups_num=3))
    args = f"m := {M}, alpha := {alpha}, n := {N}, l := {L}, min_images_per_class := {mipc}"
    con = Catalog(cat).connect()
    one_call = con.sql(f"from groups_manifest({args}, groups_num := 3)").fetchall()
    con.execute(f"create temp table kept as from cosplace_kept_classes({args})")
    two_steps = con.sql(f"from groups_manifest_from('kept', groups_num := 3, m := {M}, alpha := {alpha})").fetchall()
    groups = con.sql(
        f"select group_rank, class_index, image_id, path, class_e, class_n, class_h from cosplace_groups({args}) "
        "where group_rank < 3 order by group_rank, class_index, image_id"
    ).fetchall()
    summary = con.sql("from groups_summary('kept')").fetchall()
    assert summary == con.sql(f"from cosplace_summary({args})").fetchall()
    con.close()
    shipped = pq.read_table(r.manifest)
    assert one_call == two_steps == [tuple(row.values()) for row in shipped.to_pylist()]
    cols = ("group_rank", "class_index", "image_id", "path", "class_e", "class_n", "class_h")
    assert [tuple(row[c] for c in cols) for row in shipped.to_pylist()] == groups
    assert len(summary) == r.total_groups and [list(g.values()) for g in r.groups] == [list(s) for s in summary]


def test_split_groups_manifest_values_and_reuse(corpus_catalog):
    cat, rows = corpus_catalog
    ref = cosplace_reference(rows)
    r = split_groups(GroupsConfig(cat, groups_num=8))
    assert not r.reused and r.total_groups == len({v[1] for v in ref.values() if v[2]})
    t = pq.read_table(r.manifest)
    meta = t.schema.metadata
    assert json.loads(meta[b"vgdata.params"]) == {
        "M": 10, "alpha": 30, "N": 5, "L": 2, "min_images_per_class": 10, "groups_num": 8, "collection": "database",
    }  # fmt: skip
    assert meta[b"vgdata.catalog_fingerprint"].decode() == json.loads((cat / "build.json").read_text())["fingerprint"]
    expected = sorted(p for p, v in ref.items() if v[2] and v[3] < 8)
    assert sorted(t.column("path").to_pylist()) == expected
    ranks = t.column("group_rank").to_pylist()
    assert ranks == sorted(ranks) and set(ranks) == set(range(8))
    assert r.manifest_images == len(expected) == t.num_rows
    again = split_groups(GroupsConfig(cat, groups_num=8))
    assert again.reused and again.manifest == r.manifest
    assert Path(r.manifest).name.startswith("groups_M10_a30_N5_L2_mipc10_g8_")


def test_too_few_groups_says_how_to_fix(corpus_catalog):
    cat, _ = corpus_catalog
    with pytest.raises(VgdataError, match=r"only \d+ group\(s\) .* use --groups-num \d+ or a smaller --min-images"):
        split_groups(GroupsConfig(cat, groups_num=60))


def test_top_level_api_is_the_library():
    import vgdata
    import vgdata.groups

    assert vgdata.split_groups is vgdata.groups.split_groups and vgdata.GroupsConfig is GroupsConfig
    with pytest.raises(AttributeError):
        vgdata.no_such_thing  # noqa: B018


# ---------------------------------------------------------------- two UTM zones, both hemispheres


def zoned_reference(rows, M=10, alpha=30, N=5, L=2, mipc=2):
    """:func:`cosplace_reference` with the coordinate system in the class key, as UTM needs (REFERENCE.md b.1):
    the same (east, north) in zone 10 and zone 11, or north and south of the equator, are places ~500 km (or
    ~10,000 km) apart. ``rows``: (path, zone, letter, east, north, heading). Returns
    {path: (class_key, group_id, group_rank, class_index)} for the images of kept classes; class_index orders a
    group's classes by (zone, northern, class_e, class_n, class_h) (CosPlace: set order, see the SQL)."""
    classes: dict[tuple, list[str]] = {}
    key_of = {}
    for path, zone, letter, e, n, h in sorted(rows):
        key = (zone, letter >= "N", int(e // M), int(n // M), int(h // alpha))
        key_of[path] = key
        classes.setdefault(key, []).append(path)
    kept = {k for k, paths in classes.items() if len(paths) >= mipc}

    def group_of(key):
        return (key[2] % N, key[3] % N, key[4] % L)

    order: list[tuple] = []
    for path, *_ in sorted(rows):
        if key_of[path] in kept and group_of(key_of[path]) not in order:
            order.append(group_of(key_of[path]))
    index = {k: sorted(c for c in kept if group_of(c) == group_of(k)).index(k) for k in kept}
    return {p: (k, group_of(k), order.index(group_of(k)), index[k]) for p, k in key_of.items() if k in kept}


@pytest.fixture(scope="module")
def zoned_catalog(tmp_path_factory):
    """A real build of an '@' folder: the same (east, north, heading) cells in zones 10 and 11, north and south."""
    import utm
    from PIL import Image

    from vgdata.build import BuildConfig, build_catalog

    root = tmp_path_factory.mktemp("zoned")
    images = root / "images"
    images.mkdir()
    rows = []
    for zone in (10, 11):
        for northern in (True, False):
            for e in (500_005.0, 500_006.0, 500_025.0, 500_026.0):  # two cells, two panoramas each
                n = 4_180_005.0
                lat, lon = utm.to_latlon(e, n, zone, northern=northern)
                letter = utm.latitude_to_zone_letter(lat)
                for h in (5.0, 35.0):
                    name = make_name(utm_east=e, utm_north=n, utm_zone=zone, utm_letter=letter, lat=lat, lon=lon,
                                     pano_id=f"z{zone}{letter}{e:.0f}", heading=h, timestamp="201306")  # fmt: skip
                    rows.append((name, zone, letter, e, n, h))
    lat, lon = utm.to_latlon(500_105.0, 4_180_005.0, 10, northern=True)  # a class of one image: not kept
    rows.append((make_name(utm_east=500_105.0, utm_north=4_180_005.0, utm_zone=10, utm_letter="S", lat=lat, lon=lon,
                           pano_id="alone", heading=5.0, timestamp="201306"), 10, "S", 500_105.0, 4_180_005.0, 5.0))  # fmt: skip
    for i, (name, *_) in enumerate(rows):
        Image.new("RGB", (8, 8), (i, 2 * i, 3 * i)).save(images / name)
    r = build_catalog(BuildConfig(root / "cat", images=images, workers=1))
    assert r.images == len(rows) and r.rejects == 0
    return root / "cat", rows


def test_classes_keep_zones_and_hemispheres_apart(zoned_catalog):
    cat, rows = zoned_catalog
    assert {(z, letter) for _, z, letter, *_ in rows} == {(10, "S"), (11, "S"), (10, "F"), (11, "F")}
    ref = zoned_reference(rows)
    con = Catalog(cat).connect()
    got = con.sql(
        "select path, zone, northern, class_e, class_n, class_h, group_e, group_n, group_h, group_rank, class_index "
        "from cosplace_groups(min_images_per_class := 2)"
    ).fetchall()
    con.close()
    ours = {p: ((z, nb, e, n, h), (ge, gn, gh), rank, idx) for p, z, nb, e, n, h, ge, gn, gh, rank, idx in got}
    assert ours == ref
    assert len({v[0] for v in ref.values()}) == 16 and len({v[1] for v in ref.values()}) == 4
    # each group holds one class per coordinate system: a zone-blind key would have made 4 classes of 8
    for key, *_ in ref.values():
        members = [p for p, v in ours.items() if v[0] == key]
        assert len(members) == 2 and {(z, letter >= "N") for p, z, letter, *_ in rows if p in members} == {key[:2]}
    r = split_groups(GroupsConfig(cat, min_images_per_class=2, groups_num=4))
    shipped = pq.read_table(r.manifest, columns=["path", "group_rank", "class_index"]).to_pylist()
    assert {x["path"]: (x["group_rank"], x["class_index"]) for x in shipped} == {
        p: (v[2], v[3]) for p, v in ref.items()
    }
