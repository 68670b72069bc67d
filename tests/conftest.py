"""Shared fixtures: small generated raw inputs (real JPEGs, real CSV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vgdata.demo import make_raw_panoramas


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
