"""Shared fixtures: small generated raw inputs (real JPEGs, real CSV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from raw_panoramas import make_raw_panoramas

FIRST = ("test_sweep_e2e.py",)
"""Modules scheduled before the others: the longest first, so that the xdist workers finish together."""


def pytest_collection_modifyitems(config, items) -> None:
    """Move the items of :data:`FIRST` modules to the front (stable otherwise)."""
    items.sort(key=lambda item: item.path.name not in FIRST)


@pytest.fixture(scope="session")
def raw_panos(tmp_path_factory) -> tuple[Path, Path]:
    """Six 832x416 panoramas (crops of 128 px) and their metadata CSV; read-only for tests."""
    return make_raw_panoramas(tmp_path_factory.mktemp("raw"), n=6, width=832, seed=1)


@pytest.fixture
def raw_copy(raw_panos, tmp_path) -> tuple[Path, Path]:
    """A private copy of ``raw_panos`` that a test may damage."""
    pano_dir, csv_path = raw_panos
    dst = tmp_path / "raw"
    shutil.copytree(pano_dir.parent, dst)
    return dst / "panoramas", dst / "panoramas.csv"


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """The synthetic city's tiny preset (seed 0), rendered once per session."""
    from vgdata.synth import SynthConfig, synth

    out = tmp_path_factory.mktemp("synth") / "tiny"
    synth(SynthConfig(out, preset="tiny", seed=0, workers=1))
    return out


@pytest.fixture(scope="session")
def tiny_catalog(tiny, tmp_path_factory) -> Path:
    """A catalog of the tiny city: database crops, queries_v1 (photos) and queries_v2 (poses)."""
    from vgdata.build import BuildConfig, build_catalog

    cat = tmp_path_factory.mktemp("synthcat") / "cat"
    build_catalog(BuildConfig(cat, panoramas=tiny / "panoramas", metadata=tiny / "panoramas.csv", workers=1))
    build_catalog(BuildConfig(cat, photos=tiny / "queries_v1", collection="queries_v1", workers=1))
    build_catalog(BuildConfig(cat, poses=tiny / "queries_v2.csv", collection="queries_v2", workers=1))
    return cat
