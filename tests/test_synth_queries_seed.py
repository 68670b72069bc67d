"""``vgdata synth --queries-seed``: a held-out query set of the same city, panoramas unchanged."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import vgdata_app
from vgdata.synth import SynthConfig, synth


def digests(root: Path, sub: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / sub).glob("*.jpg"))}


def positions(root: Path) -> list[tuple[str, str]]:
    return [(r["lat"], r["lon"]) for r in csv.DictReader((root / "queries_v2.csv").open())]


@pytest.mark.slow
def test_queries_seed_changes_the_queries_only(tiny, tmp_path):
    held_out = tmp_path / "q1"
    synth(SynthConfig(held_out, preset="tiny", seed=0, queries_seed=1, workers=1))
    # the city and its drives: byte for byte
    assert (held_out / "panoramas.csv").read_bytes() == (tiny / "panoramas.csv").read_bytes()
    panos = digests(tiny, "panoramas")
    assert len(panos) > 10 and digests(held_out, "panoramas") == panos
    # the queries: other photos at other positions
    for sub in ("queries_v1", "queries_v2"):
        a, b = digests(tiny, sub), digests(held_out, sub)
        assert a.keys() == b.keys() and len(a) > 0
        assert all(a[name] != b[name] for name in a)
    assert (held_out / "queries_v2.csv").read_bytes() != (tiny / "queries_v2.csv").read_bytes()
    pa, pb = positions(tiny), positions(held_out)
    assert len(pa) == len(pb) > 0 and all(x != y for x, y in zip(pa, pb, strict=True))
    assert "queries_seed: 0\n" in (tiny / "README.txt").read_text()
    assert "queries_seed: 1\n" in (held_out / "README.txt").read_text()


@pytest.mark.slow
def test_queries_seed_equal_to_seed_is_the_default(tiny, tmp_path):
    same = tmp_path / "q0"
    res = CliRunner().invoke(
        vgdata_app, ["synth", str(same), "--preset", "tiny", "--seed", "0", "--queries-seed", "0", "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    files = sorted(p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(same).as_posix() for p in same.rglob("*") if p.is_file())
    for name in files:
        assert (same / name).read_bytes() == (tiny / name).read_bytes(), name


@pytest.mark.slow
def test_queries_only_writes_the_same_queries_and_no_panoramas(tiny, tmp_path):
    # --queries-only: the held-out set without rendering the city again; the same bytes as the full run.
    full, only = tmp_path / "full", tmp_path / "only"
    synth(SynthConfig(full, preset="tiny", seed=0, queries_seed=2, workers=1))
    res = synth(SynthConfig(only, preset="tiny", seed=0, queries_seed=2, workers=1, queries_only=True))
    assert res.panoramas == 0 and not (only / "panoramas").exists() and not (only / "panoramas.csv").exists()
    for sub in ("queries_v1", "queries_v2"):
        assert digests(only, sub) == digests(full, sub) and len(digests(full, sub)) > 0
    assert (only / "queries_v2.csv").read_bytes() == (full / "queries_v2.csv").read_bytes()
