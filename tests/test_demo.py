"""make demo's plumbing: a failing step ends it with one line; the synth cache key; the schedule flags."""

from __future__ import annotations

import sys
from dataclasses import asdict

import pytest

from vgdata import demo
from vgdata.synth.generate import GENERATOR_VERSION, PRESETS


def test_failing_step_is_one_line_not_a_traceback():
    with pytest.raises(SystemExit) as err:
        demo._step([sys.executable, "-c", "raise SystemExit(3)"], "vgdata split-groups")
    assert str(err.value) == (
        "make demo: `vgdata split-groups` failed (exit 3); fix the error above and run `make demo` again"
    )
    demo._step([sys.executable, "-c", "pass"], "ok")  # success returns quietly


def test_synth_is_current_only_for_this_generator_and_preset(tmp_path):
    raw = tmp_path / "demo-raw"
    assert not demo._synth_is_current(raw)
    raw.mkdir()
    good = f"generator: {GENERATOR_VERSION}\npreset: demo ({asdict(PRESETS['demo'])})\nseed: 0\n"
    (raw / "README.txt").write_text(good)
    assert demo._synth_is_current(raw)
    (raw / "README.txt").write_text(good.replace(GENERATOR_VERSION, "vgdata-synth/0"))
    assert not demo._synth_is_current(raw)
    n = PRESETS["demo"].queries_v2
    (raw / "README.txt").write_text(good.replace(f"'queries_v2': {n}", f"'queries_v2': {n + 1}"))
    assert not demo._synth_is_current(raw)


def test_fit_flags_follow_the_schedule():
    flags = demo.DEMO_FIT
    for key, value in demo.DEMO_SCHEDULE.items():
        assert f"--{key.replace('_', '-')}={value}" in flags
    # ImageNet EfficientNet-Lite0 with CosPlace's freezing (no --train-all-layers), 96 px (the 98 px crops)
    assert flags[flags.index("--backbone") + 1] == "EfficientNetLite0"
    assert flags[flags.index("--backbone-weights") + 1] == "imagenet"
    assert "--train-all-layers" not in flags and flags[flags.index("--image-size") + 1] == "96"


def test_demo_tests_on_the_presets_test_year():
    assert demo.test_year() == PRESETS["demo"].test_year == 2013
