"""vgtrain.data and vgtrain.augment on real manifests of the synthetic city (built with vgdata)."""

from __future__ import annotations

import colorsys
import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vgtrain.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchAugment,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    crop_boxes,
    hsv_to_rgb,
    normalize,
    resized_crop,
    rgb_to_hsv,
)
from vgtrain.data import (
    DECODE_RETRIES,
    EpochSampler,
    EvalManifest,
    GroupDataset,
    GroupsManifest,
    ManifestError,
    equal_size_batches,
    eval_loader,
    train_loader,
)


@pytest.fixture(scope="session")
def manifests(tmp_path_factory) -> dict[str, Path]:
    """The brief's recipe: synth tiny, build-catalog, split-groups (mipc 1, 2 groups), eval-set self."""
    from vgdata.build import BuildConfig, build_catalog
    from vgdata.evalset import eval_set
    from vgdata.groups import GroupsConfig, split_groups
    from vgdata.synth import SynthConfig, synth

    root = tmp_path_factory.mktemp("vgtrain_data")
    raw, cat = root / "raw", root / "cat"
    synth(SynthConfig(raw, preset="tiny", seed=0, workers=1))
    build_catalog(BuildConfig(catalog=cat, panoramas=raw / "panoramas", metadata=raw / "panoramas.csv", workers=1))
    groups = split_groups(GroupsConfig(catalog=cat, min_images_per_class=1, groups_num=2))
    ev = eval_set(cat, name="self", database="database", queries="database")
    return {"groups": Path(groups.manifest), "eval": Path(ev.manifest), "raw": raw, "catalog": cat}


def tiny_counts(manifests) -> dict:
    """What the manifests must hold, derived from the city's inputs, not from what vgtrain reads: 12 crops per
    panorama of panoramas.csv; positives = database crops within 25 m (panorama positions from the catalog's
    UTM coordinates, numpy); classes of the first 2 groups by CosPlace's rule (M 10, alpha 30, N 5, L 2, mipc 1)."""
    import csv

    with open(manifests["raw"] / "panoramas.csv", newline="") as f:
        n_panos = sum(1 for _ in csv.DictReader(f))
    images = pq.read_table(manifests["catalog"] / "images", columns=["path", "utm_east", "utm_north", "heading"])
    rows = sorted(images.to_pylist(), key=lambda r: r["path"])
    xy = np.array([(r["utm_east"], r["utm_north"]) for r in rows])
    within = (np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) <= 25.0).sum(axis=1)
    cls = [(int(r["utm_east"] // 10), int(r["utm_north"] // 10), int(r["heading"] % 360 // 30)) for r in rows]
    order: list[tuple] = []
    for c in cls:
        if (g := (c[0] % 5, c[1] % 5, c[2] % 2)) not in order:
            order.append(g)
    first_two = [(c, order.index((c[0] % 5, c[1] % 5, c[2] % 2))) for c in cls]
    first_two = [(c, g) for c, g in first_two if g < 2]
    return {
        "crops": 12 * n_panos,
        "positives": int(within.sum()),
        "classes_per_group": [len({c for c, g in first_two if g == k}) for k in range(2)],
        "group_images": len(first_two),
    }


def rewrite(src: Path, dst: Path, table: pa.Table | None = None, drop_meta: tuple[str, ...] = ()) -> Path:
    """Write ``table`` (default: src's rows) to ``dst`` with src's metadata minus ``drop_meta``; the image
    roots are made absolute (resolved from src), so that ``dst`` may live outside the catalog."""
    pf = pq.ParquetFile(src)
    meta = {k: v for k, v in pf.schema_arrow.metadata.items() if k.decode() not in drop_meta}
    if b"vgdata.image_roots" in meta:
        meta[b"vgdata.image_roots"] = json.dumps(roots_of(src)).encode()
    table = pq.read_table(src) if table is None else table
    pq.write_table(table.replace_schema_metadata(meta), dst)
    return dst


def roots_of(path: Path) -> dict[str, str]:
    """The manifest's image roots resolved as the contract says: relative to the catalog (the manifests folder's parent)."""
    roots = json.loads(pq.ParquetFile(path).schema_arrow.metadata[b"vgdata.image_roots"])
    return {c: str(Path(path).parent.parent / r) for c, r in roots.items()}


# ---------------------------------------------------------------- GroupsManifest


def test_groups_manifest_matches_the_rows(manifests):
    m = GroupsManifest.read(manifests["groups"])
    rows = pq.read_table(manifests["groups"]).to_pylist()
    roots = roots_of(manifests["groups"])
    expected: dict[int, dict[int, list[str]]] = {}
    for r in rows:
        expected.setdefault(r["group_rank"], {}).setdefault(r["class_index"], []).append(
            f"{roots[r['collection']]}/{r['path']}"
        )
    assert len(m.groups) == len(expected) == 2
    counts = tiny_counts(manifests)
    assert m.classes_per_group == [len(expected[g]) for g in sorted(expected)] == counts["classes_per_group"]
    for g, classes in enumerate(m.groups):
        for c, paths in enumerate(classes):
            assert paths == sorted(expected[g][c])
    flat = [p for classes in m.groups for paths in classes for p in paths]
    assert len(flat) == len(rows) == counts["group_images"]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in flat)
    assert m.params["groups_num"] == 2 and m.params["min_images_per_class"] == 1
    assert len(m.catalog_fingerprint) == 64
    assert len(m.fingerprint) == 64 and m.fingerprint == GroupsManifest.read(manifests["groups"]).fingerprint
    assert m.fingerprint != m.catalog_fingerprint


def test_manifests_split_in_many_row_groups(manifests, tmp_path):
    for kind, cls in (("groups", GroupsManifest), ("eval", EvalManifest)):
        src = manifests[kind]
        meta = pq.ParquetFile(src).schema_arrow.metadata
        small = Path(src).with_name(f"{kind}_row_groups_{tmp_path.name}.parquet")  # beside it: roots are relative
        pq.write_table(pq.read_table(src).replace_schema_metadata(meta), small, row_group_size=7)
        assert pq.ParquetFile(small).num_row_groups > 5
        a, b = cls.read(src), cls.read(small)
        if kind == "groups":
            assert a.groups == b.groups
        else:
            assert a.database == b.database and a.queries == b.queries
            assert all(np.array_equal(x, y) for x, y in zip(a.positives, b.positives, strict=True))


def test_groups_manifest_missing_column(manifests, tmp_path):
    broken = rewrite(
        manifests["groups"], tmp_path / "g.parquet", pq.read_table(manifests["groups"]).drop(["class_index"])
    )
    with pytest.raises(ManifestError, match=r"lacks columns class_index; rebuild it with `vgdata split-groups`"):
        GroupsManifest.read(broken)


def test_groups_manifest_missing_metadata(manifests, tmp_path):
    broken = rewrite(manifests["groups"], tmp_path / "g.parquet", drop_meta=("vgdata.image_roots",))
    with pytest.raises(ManifestError, match=r"lacks metadata vgdata.image_roots"):
        GroupsManifest.read(broken)
    with pytest.raises(ManifestError, match="does not exist"):
        GroupsManifest.read(tmp_path / "absent.parquet")


def test_groups_manifest_gap_in_classes(manifests, tmp_path):
    t = pq.read_table(manifests["groups"])
    keep = np.asarray(t["class_index"].to_numpy() != 2) | np.asarray(t["group_rank"].to_numpy() != 0)
    broken = rewrite(manifests["groups"], tmp_path / "g.parquet", t.filter(pa.array(keep)))
    with pytest.raises(ManifestError, match="without gaps"):
        GroupsManifest.read(broken)


# ---------------------------------------------------------------- EvalManifest


def test_eval_manifest_matches_the_rows(manifests):
    m = EvalManifest.read(manifests["eval"])
    t = pq.read_table(manifests["eval"])
    roots = roots_of(manifests["eval"])
    db = [r for r in t.to_pylist() if r["role"] == "database"]
    qs = [r for r in t.to_pylist() if r["role"] == "query"]
    crops = tiny_counts(manifests)["crops"]
    assert len(m.database) == len(db) == crops and len(m.queries) == len(qs) == crops
    assert m.database == [f"{roots[r['collection']]}/{r['path']}" for r in sorted(db, key=lambda r: r["idx"])]
    assert m.queries == [f"{roots[r['collection']]}/{r['path']}" for r in sorted(qs, key=lambda r: r["idx"])]
    assert all(os.path.isfile(p) for p in m.database[:5] + m.queries[-5:])
    assert len(m.positives) == crops
    for r in qs:
        assert m.positives[r["idx"]].tolist() == sorted(r["positives"])
    assert sum(p.size for p in m.positives) == tiny_counts(manifests)["positives"]
    assert m.database_sizes == [(r["width"], r["height_px"]) for r in db] and m.query_sizes[0] == (79, 79)
    assert m.params["threshold"] == 25.0 and len(m.fingerprint) == 64


def test_eval_manifest_without_positives(manifests, tmp_path):
    t = pq.read_table(manifests["eval"])
    empty = pa.array([None if r == "database" else [] for r in t["role"].to_pylist()], pa.list_(pa.int32()))
    t = t.set_column(t.schema.get_field_index("positives"), "positives", empty)
    broken = rewrite(manifests["eval"], tmp_path / "e.parquet", t)
    with pytest.raises(ManifestError, match="has no query with a positive; rebuild it with `vgdata eval-set`"):
        EvalManifest.read(broken)


def test_eval_manifest_missing_column_or_metadata(manifests, tmp_path):
    t = pq.read_table(manifests["eval"])
    broken = rewrite(manifests["eval"], tmp_path / "e.parquet", t.drop(["positives", "role"]))
    with pytest.raises(ManifestError, match="lacks columns role, positives; rebuild it with `vgdata eval-set`"):
        EvalManifest.read(broken)
    broken = rewrite(
        manifests["eval"], tmp_path / "m.parquet", drop_meta=("vgdata.params", "vgdata.catalog_fingerprint")
    )
    with pytest.raises(ManifestError, match="lacks metadata vgdata.params, vgdata.catalog_fingerprint"):
        EvalManifest.read(broken)


# ---------------------------------------------------------------- EpochSampler


def test_epoch_sampler_is_deterministic_and_epochs_differ():
    a = list(EpochSampler(7, 50, seed=3, epoch=2))
    assert a == list(EpochSampler(7, 50, seed=3, epoch=2))
    assert a != list(EpochSampler(7, 50, seed=3, epoch=1))
    assert a != list(EpochSampler(7, 50, seed=4, epoch=2))
    assert len(a) == len(EpochSampler(7, 50, seed=3, epoch=2)) == 50
    assert all(0 <= c < 7 and 0 <= s < 2**63 for c, s in a)
    assert len({s for _, s in a}) == 50  # 63-bit seeds: no repeats


def test_epoch_sampler_draws_classes_evenly():
    n = 7
    classes = [c for c, _ in EpochSampler(n, 100, seed=0, epoch=0)]
    for k in range(0, 98, n):  # every full permutation holds each class once
        assert sorted(classes[k : k + n]) == list(range(n))
    counts = Counter(classes)
    assert set(counts) == set(range(n)) and max(counts.values()) - min(counts.values()) <= 1
    assert classes != sorted(classes)


def test_epoch_sampler_ranks_interleave_the_world_1_stream():
    """Rank r of world w takes items r::w of the stream; the world-1 run with w x samples is that stream."""
    whole = list(EpochSampler(5, 24, seed=1, epoch=4))
    r0 = list(EpochSampler(5, 12, seed=1, epoch=4, rank=0, world_size=2))
    r1 = list(EpochSampler(5, 12, seed=1, epoch=4, rank=1, world_size=2))
    assert r0 == whole[0::2] and r1 == whole[1::2]
    assert not set(r0) & set(r1)
    three = [list(EpochSampler(5, 8, seed=1, epoch=4, rank=r, world_size=3)) for r in range(3)]
    assert [x for trio in zip(*three, strict=True) for x in trio] == whole


def test_epoch_sampler_start_resumes_mid_epoch():
    full = list(EpochSampler(9, 40, seed=0, epoch=1, rank=1, world_size=2))
    rest = EpochSampler(9, 40, seed=0, epoch=1, rank=1, world_size=2, start=15)
    assert list(rest) == full[15:] and len(rest) == 25
    with pytest.raises(ValueError):
        EpochSampler(9, 40, seed=0, epoch=1, rank=2, world_size=2)


# ---------------------------------------------------------------- GroupDataset


def decode(path: str) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)


def test_group_dataset_images(manifests):
    m = GroupsManifest.read(manifests["groups"])
    native = GroupDataset(m.groups[0], 79)  # the tiny crops are 79 x 79: no resize
    image, label, failures = native[(2, 123)]
    assert image.dtype == torch.uint8 and image.shape == (3, 79, 79) and (label, failures) == (2, 0)
    import random

    chosen = random.Random(123).choice(m.groups[0][2])
    assert torch.equal(image, decode(chosen))
    small = GroupDataset(m.groups[0], 64)
    image, label, _ = small[(2, 123)]
    assert image.shape == (3, 64, 64) and label == 2
    with Image.open(chosen) as im:
        expected = np.array(im.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR))
    assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))
    assert torch.equal(small[(2, 123)][0], image)  # same item, same image
    picked = {small[(2, s)][0].sum().item() for s in range(30)}
    assert len(picked) > 1  # the seed picks among the class's 4 images


def make_class(tmp_path: Path, good: str, n_bad: int) -> list[str]:
    """A class of ``n_bad`` broken files (truncated JPEG, garbage, missing) and optionally one good image."""
    data = Path(good).read_bytes() if good else b""
    paths = []
    for i in range(n_bad):
        p = tmp_path / f"bad{i}.jpg"
        if i % 3 == 0:
            p.write_bytes(data[: len(data) // 3] if data else b"\xff\xd8\xff\xe0" + b"\0" * 50)
        elif i % 3 == 1:
            p.write_bytes(b"not an image at all")
        paths.append(str(p))  # i % 3 == 2: the file does not exist
    if good:
        paths.append(str(shutil.copy(good, tmp_path / "good.jpg")))
    return paths


def test_group_dataset_skips_corrupt_images(manifests, tmp_path):
    m = GroupsManifest.read(manifests["groups"])
    good = m.groups[1][0][0]
    classes = [make_class(tmp_path, good, 1), m.groups[1][1]]
    ds = GroupDataset(classes, 79)
    seen = Counter()
    for seed in range(20):
        image, label, failures = ds[(0, seed)]
        assert label == 0 and torch.equal(image, decode(good))
        seen[failures] += 1
    assert set(seen) == {0, 1}  # the corrupt file was picked first sometimes, and then replaced


def test_group_dataset_class_of_corrupt_files(manifests, tmp_path):
    m = GroupsManifest.read(manifests["groups"])
    (tmp_path / "six").mkdir()
    (tmp_path / "two").mkdir()
    ds = GroupDataset([m.groups[0][0], make_class(tmp_path / "six", "", 6)], 32)
    image, label, failures = ds[(1, 7)]
    assert label == -1 and failures == 1 + DECODE_RETRIES
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and image.sum() == 0
    assert ds[(0, 7)][1:] == (0, 0)
    two = GroupDataset([make_class(tmp_path / "two", "", 2)], 32)
    assert two[(0, 0)][1:] == (-1, 2)  # fewer images than tries: each tried once


def test_train_loader_same_batches_with_and_without_workers(manifests):
    m = GroupsManifest.read(manifests["groups"])
    ds = GroupDataset(m.groups[0], 64)
    kw = {"batch_size": 8, "seed": 5, "epoch": 3, "iterations": 4}
    serial = list(train_loader(ds, num_workers=0, **kw))
    parallel = list(train_loader(ds, num_workers=2, **kw))
    assert len(serial) == len(parallel) == 4
    for (xa, la, fa), (xb, lb, fb) in zip(serial, parallel, strict=True):
        assert xa.shape == (8, 3, 64, 64) and xa.dtype == torch.uint8
        assert torch.equal(xa, xb) and torch.equal(la, lb) and torch.equal(fa, fb)
        assert la.dtype == torch.int64 and fa.sum() == 0
    labels = torch.cat([b[1] for b in serial]).tolist()
    assert labels == [c for c, _ in EpochSampler(6, 32, seed=5, epoch=3)]
    other = next(iter(train_loader(ds, num_workers=0, **{**kw, "epoch": 4})))
    assert not torch.equal(other[1], serial[0][1]) or not torch.equal(other[0], serial[0][0])
    resumed = list(train_loader(ds, num_workers=0, start_iteration=3, **kw))
    assert len(resumed) == 1 and torch.equal(resumed[0][0], serial[3][0])


# ---------------------------------------------------------------- evaluation loaders


def test_equal_size_batches():
    sizes = [(4, 4), (4, 4), (4, 4), (5, 4), (4, 4), (4, 4)]
    assert equal_size_batches(sizes, 2) == [[0, 1], [2], [3], [4, 5]]
    assert equal_size_batches(sizes, 1) == [[i] for i in range(6)]


def test_eval_loader(manifests, tmp_path):
    m = EvalManifest.read(manifests["eval"])
    paths = m.queries[:10]
    batches = list(eval_loader(paths, image_size=None, batch_size=4, num_workers=0))
    assert [b[0].shape for b in batches] == [(4, 3, 79, 79), (4, 3, 79, 79), (2, 3, 79, 79)]
    assert torch.cat([b[1] for b in batches]).tolist() == list(range(10))
    assert torch.equal(batches[0][0][1], decode(paths[1]))
    resized = list(eval_loader(paths, image_size=48, batch_size=3, num_workers=2))
    assert [b[0].shape[0] for b in resized] == [3, 3, 3, 1] and resized[0][0].shape[2:] == (48, 48)
    # A set of mixed sizes: batches of consecutive equal-sized images only.
    odd = tmp_path / "odd.jpg"
    Image.new("RGB", (60, 40), (10, 20, 30)).save(odd)
    mixed = [paths[0], paths[1], str(odd), paths[2]]
    got = list(eval_loader(mixed, image_size=None, batch_size=4, num_workers=0, sizes=None))
    assert [tuple(b[0].shape) for b in got] == [(2, 3, 79, 79), (1, 3, 40, 60), (1, 3, 79, 79)]
    with pytest.raises(ManifestError, match="disagree"):  # sizes that lie are caught, naming the file
        list(eval_loader(mixed, image_size=None, batch_size=4, num_workers=0, sizes=[(79, 79)] * 4))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(ManifestError, match="bad.jpg"):
        list(eval_loader([paths[0], str(bad)], image_size=32, batch_size=2, num_workers=0))


# ---------------------------------------------------------------- augment


def pixel(rgb) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)


def test_normalize_known_pixel():
    x = torch.tensor([255, 128, 0], dtype=torch.uint8).view(3, 1, 1)
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], (128 / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]]
    expected.append(-IMAGENET_MEAN[2] / IMAGENET_STD[2])
    y = normalize(x)
    assert y.dtype == torch.float32 and y.shape == (3, 1, 1)
    assert torch.allclose(y.flatten(), torch.tensor(expected), atol=1e-6)
    assert torch.allclose(normalize(x.unsqueeze(0).float() / 255), y.unsqueeze(0), atol=1e-6)


def test_hsv_against_colorsys():
    x = torch.rand(500, 3, generator=torch.Generator().manual_seed(0)).view(500, 3, 1, 1)
    x[0] = 0.3  # gray
    x[1] = 0.0  # black
    hsv = rgb_to_hsv(x).view(500, 3)
    ref = torch.tensor([colorsys.rgb_to_hsv(*v) for v in x.view(500, 3).tolist()])
    assert torch.allclose(hsv, ref, atol=1e-5)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    shift = torch.linspace(-0.5, 0.5, 500)
    rotated = torch.tensor(
        [
            colorsys.hsv_to_rgb((h + s) % 1.0, sat, v)
            for (h, sat, v), s in zip(ref.tolist(), shift.tolist(), strict=True)
        ]
    )
    assert torch.allclose(adjust_hue(x, shift).view(500, 3), rotated, atol=1e-5)


def test_hue_half_turn_makes_red_cyan():
    red = pixel([1.0, 0.0, 0.0])
    assert torch.allclose(adjust_hue(red, 0.5).flatten(), torch.tensor([0.0, 1.0, 1.0]), atol=1e-6)
    assert torch.allclose(adjust_hue(red, -0.5).flatten(), torch.tensor([0.0, 1.0, 1.0]), atol=1e-6)
    assert torch.allclose(adjust_hue(red, 1 / 3).flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    # Through BatchAugment: a pure-red image keeps full saturation and value whatever the hue shift.
    aug = BatchAugment(8, brightness=0, contrast=0, saturation=0, hue=0.5, scale=(1, 1), ratio=(1, 1))
    x = torch.zeros(16, 3, 8, 8, dtype=torch.uint8)
    x[:, 0] = 255
    y = aug(x, torch.Generator().manual_seed(0))
    rgb = y * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert torch.allclose(rgb.amax(dim=1), torch.ones(16, 8, 8), atol=1e-5)
    assert torch.allclose(rgb.amin(dim=1), torch.zeros(16, 8, 8), atol=1e-5)
    assert len({tuple(v) for v in rgb[:, :, 0, 0].round(decimals=3).tolist()}) == 16  # a shift per image


def test_contrast_and_saturation_zero():
    x = torch.rand(2, 3, 5, 5)
    gray = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    assert torch.allclose(adjust_saturation(x, torch.zeros(2)), gray.expand_as(x), atol=1e-6)
    flat = adjust_contrast(x, torch.zeros(2))
    assert torch.allclose(flat, gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(x), atol=1e-6)


def test_batch_augment_shape_and_determinism():
    x = torch.randint(0, 256, (4, 3, 96, 120), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    aug = BatchAugment(64)
    a = aug(x, torch.Generator().manual_seed(7))
    assert a.shape == (4, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(8)))
    twins = aug(x[:1].expand(2, -1, -1, -1), torch.Generator().manual_seed(7))
    assert (twins[0] - twins[1]).abs().mean() > 0.05  # each image gets its own jitter and crop
    crops_only = BatchAugment(64, brightness=0, contrast=0, saturation=0, hue=0)
    twins = crops_only(x[:1].expand(2, -1, -1, -1), torch.Generator().manual_seed(7))
    assert (twins[0] - twins[1]).abs().mean() > 0.05  # different crops alone make them differ


@pytest.mark.parametrize("random_order", [True, False])
@pytest.mark.parametrize("size_in", [128, 100])
def test_batch_augment_identity(size_in, random_order):
    """No jitter, whole-image crop: the output is the resized, normalised input."""
    x = torch.randint(0, 256, (3, 3, size_in, size_in), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    aug = BatchAugment(
        128, brightness=0, contrast=0, saturation=0, hue=0, scale=(1, 1), ratio=(1, 1), random_order=random_order
    )
    y = aug(x, torch.Generator().manual_seed(0))
    plain = F.interpolate(x.float() / 255, size=(128, 128), mode="bilinear", align_corners=False)
    # Within 1e-5 in [0, 1]; grid_sample's float32 coordinates are off by ~3e-6 pixel at 100 px,
    # which dividing by the ImageNet std (~0.22) turns into ~1.2e-5 after normalisation.
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert (y * std - (normalize(plain) * std)).abs().max() <= 1e-5
    assert torch.allclose(y, normalize(plain), atol=5e-5)
    if size_in == 128:
        assert torch.allclose(y, normalize(x), atol=1e-5)


def test_jitter_order_changes_nothing_without_jitter_but_something_with_it():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    kw = {"scale": (1, 1), "ratio": (1, 1)}
    fixed = BatchAugment(32, random_order=False, **kw)(x, torch.Generator().manual_seed(0))
    shuffled = BatchAugment(32, random_order=True, **kw)(x, torch.Generator().manual_seed(0))
    # Same factors (drawn first, in the same order); only the per-image order differs.
    assert fixed.shape == shuffled.shape and not torch.allclose(fixed, shuffled, atol=1e-3)


def test_crop_boxes_follow_random_resized_crop():
    g = torch.Generator().manual_seed(0)
    boxes = crop_boxes(2000, 96, 128, (0.5, 1.0), (3 / 4, 4 / 3), g, torch.device("cpu"))
    top, left, h, w = boxes.T
    assert ((top >= 0) & (left >= 0) & (top + h <= 96) & (left + w <= 128)).all()
    assert (boxes == boxes.round()).all()
    area = h * w / (96 * 128)
    assert area.min() > 0.49 and area.max() <= 1.0
    ratio = w / h
    assert ratio.min() > 0.74 and ratio.max() < 1.35
    assert top.unique().numel() > 10 and left.unique().numel() > 10
    # Impossible request: torchvision's fallback, a centre crop at the nearest allowed ratio.
    fallback = crop_boxes(3, 96, 128, (1.0, 1.0), (1.0, 1.0), g, torch.device("cpu"))
    assert fallback.tolist() == [[0.0, 16.0, 96.0, 96.0]] * 3


def test_resized_crop_is_exact_at_native_scale():
    x = torch.rand(2, 3, 50, 70)
    boxes = torch.tensor([[10.0, 20.0, 32.0, 32.0], [0.0, 38.0, 32.0, 32.0]], dtype=torch.float64)
    y = resized_crop(x, boxes, 32)
    assert torch.allclose(y[0], x[0, :, 10:42, 20:52], atol=1e-5)
    assert torch.allclose(y[1], x[1, :, 0:32, 38:70], atol=1e-5)
    assert math.isclose(resized_crop(x, boxes, 64).mean().item(), y.mean().item(), abs_tol=0.02)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batch_augment_on_cuda():
    x = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, device="cuda")
    aug = BatchAugment(32)
    a = aug(x, torch.Generator(device="cuda").manual_seed(1))
    assert a.device.type == "cuda" and a.shape == (4, 3, 32, 32)
    assert torch.equal(a, aug(x, torch.Generator(device="cuda").manual_seed(1)))
