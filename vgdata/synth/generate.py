"""``vgdata synth``: write the raw inputs of an SF-XL-like dataset for a synthetic city.

What it writes under OUT_DIR (the same inputs a user would bring; nothing downstream
treats them specially):

* ``panoramas/<pano_id>.jpg`` + ``panoramas.csv`` (pano_id, lat, lon, heading, timestamp,
  pitch, roll, altitude): 2:1 equirectangular captures along streets, several years;
* ``queries_v1/*.jpg``: perspective photos with EXIF GPS (lat/lon, altitude, time) and no
  heading, like SF-XL's Flickr queries; some at night, some grayscale, some occluded;
* ``queries_v2/*.jpg`` + ``queries_v2.csv`` (path, lat, lon, altitude, heading, pitch, roll,
  timestamp): daytime perspective photos with their 6DoF poses;
* ``README.txt``: preset, seed, queries seed, origin, counts and the generator version;
* ``provenance.json`` (footprint cities only): the source of the buildings and streets, its licence.

Footprint cities (``footprints``, or the presets ``prague`` / ``helsinki``): the buildings and
streets come from real data (:mod:`vgdata.synth.footprints`) instead of
:func:`vgdata.synth.scene.make_scene`; the origin is the data's centroid.

Modules: :mod:`vgdata.synth.plan` (presets, frame, drives and query positions),
:mod:`vgdata.synth.photos` (the rendering work run in worker processes) and this one (the
command: configuration, running the tasks, the CSV and README files); the names of the first
two are importable from here.

Geometry: the scene lives in a local frame of metres east/north of the origin's UTM
coordinates (``vgdata.synth.scene``); positions become lat/lon through the inverse UTM of
the origin's zone, so distances in the catalog are the scene's metres. Headings are
relative to UTM grid north (the grid convergence, ~0.35 degrees in San Francisco, is ignored).

Determinism: every random choice comes from ``numpy.random.Generator(PCG64)`` streams keyed
by (seed, purpose, index), and every file is a pure function of its parameters, so the same
seed gives the same bytes whatever ``workers`` is; different seeds give different cities.
The city and its drives (``panoramas/``, ``panoramas.csv``) depend on ``seed`` only; the
queries (positions, headings, looks, photos) on ``queries_seed`` (default: ``seed``) only, so
another ``queries_seed`` gives a held-out query set of the same city.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vgdata.errors import UsageError
from vgdata.synth.photos import _render_capture, _render_query, exif_bytes, photo_az_span
from vgdata.synth.plan import (
    PRESETS,
    Capture,
    Frame,
    Preset,
    QueryPlan,
    bearing,
    driven_streets,
    pano_id,
    plan_captures,
    plan_queries,
    rng_for,
    test_year,
)

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SF_ORIGIN",
    "Capture",
    "Frame",
    "Preset",
    "QueryPlan",
    "SynthConfig",
    "SynthResult",
    "bearing",
    "driven_streets",
    "exif_bytes",
    "pano_id",
    "photo_az_span",
    "plan_captures",
    "plan_queries",
    "queries_seed",
    "rng_for",
    "synth",
    "test_year",
    "write_metadata_only",
]

# 2: queries by the kerb, looking along or across the street;
# 3: demo = a neighbourhood (several streets, 6 years, a test year), street ends left undriven,
#    queries spread over the driven streets by length and kept off crossing roadways, queries_seed
GENERATOR_VERSION = "vgdata-synth/3"
SF_ORIGIN = (37.7749, -122.4194)


@dataclass
class SynthConfig:
    """Parameters of ``vgdata synth``."""

    out_dir: Path
    """Folder to write (created; files already there are overwritten)."""
    preset: str = "demo"
    """tiny (tests, seconds), demo (make demo, ~2.5-3 minutes on 2 idle cores), city (benchmarks)."""
    seed: int = 0
    """City and capture seed."""
    queries_seed: int | None = None
    """Query seed (positions, headings, looks of the query photos); None: ``seed``. Another value
    gives a held-out query set of the same city (panoramas unchanged, byte for byte)."""
    origin: tuple[float, float] = SF_ORIGIN
    """Latitude, longitude of the city centre (degrees); default San Francisco (UTM 10S)."""
    workers: int = 0
    """Rendering processes; 0 = all cores."""
    metadata_only: int = 0
    """If > 0: write only panoramas.csv for this many panoramas (no images), for scale tests."""
    queries_only: bool = False
    """Write only the queries (queries_v1/, queries_v2/, queries_v2.csv): a held-out query set of a
    city already rendered elsewhere (the same queries the full run with these seeds writes)."""
    footprints: Path | None = None
    """A vector file of building polygons (any format geopandas reads): a city over real footprints;
    ``preset`` then sets only the capture sizes (tiny, demo, city; street ends are driven too: no
    ``drive_margin_m``). The presets ``prague`` and
    ``helsinki`` bring their own file. ``origin`` is ignored (the data's centroid)."""
    layer: str | None = None
    """The buildings layer of ``footprints`` (default: its first)."""
    streets_layer: str | None = None
    """A layer of street lines in ``footprints`` (default: none, centrelines between buildings)."""


@dataclass
class SynthResult:
    out_dir: str
    panoramas: int
    queries_v1: int
    queries_v2: int
    years: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- the command


def synth(config: SynthConfig) -> SynthResult:
    """Generate the city and write its raw inputs under ``config.out_dir``.

    Needs the ``catalog`` extra (pyproj for the frame, shapely for the layout): without it, one
    line naming the extra (:func:`vgdata.extras.require_catalog_extra`) before anything is written.
    """
    from vgdata.extras import require_catalog_extra

    require_catalog_extra()
    from vgdata.jobs import default_workers
    from vgdata.synth.plan import FOOTPRINT_PRESET_NAMES
    from vgdata.synth.scene import make_scene

    if config.preset not in PRESETS:
        raise UsageError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[config.preset]
    city = None
    if config.footprints is not None or config.preset in FOOTPRINT_PRESET_NAMES:
        from vgdata.synth.footprints import load_city

        if config.footprints is not None and config.preset in FOOTPRINT_PRESET_NAMES:
            raise UsageError(
                f"--preset {config.preset} brings its own footprints: drop --footprints (or use tiny/demo/city)"
            )
        if config.metadata_only:
            raise UsageError("--metadata-only draws its own street grid: not with footprints")
        city = load_city(
            seed=config.seed,
            footprints=config.footprints,
            layer=config.layer,
            streets_layer=config.streets_layer,
            preset=config.preset,
        )
        if not city.scene.streets:
            raise UsageError(f"{city.provenance['source']}: no streets to drive along")
        config = replace(config, origin=city.origin)  # the data's centroid (the caller's config is kept)
        preset = replace(preset, drive_margin_m=0.0)  # real streets are short segments: drive them whole
    frame = Frame.at(*config.origin)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.metadata_only:
        n = write_metadata_only(out, config, frame)
        _write_readme(out, config, frame, {"panoramas (metadata only)": n})
        return SynthResult(str(out), n, 0, 0, list(preset.years))

    scene = make_scene(config.seed, size_m=preset.size_m) if city is None else city.scene
    blocked = None if city is None else city.blocked
    captures = plan_captures(scene.streets, preset, config.seed, blocked)
    if not captures:
        raise UsageError("no panorama position on the streets lies outside the buildings")
    qseed = queries_seed(config)
    v1 = plan_queries("v1", preset.queries_v1, captures, scene.streets, preset, qseed, blocked)
    v2 = plan_queries("v2", preset.queries_v2, captures, scene.streets, preset, qseed, blocked)
    for sub in ("queries_v1", "queries_v2") if config.queries_only else ("panoramas", "queries_v1", "queries_v2"):
        (out / sub).mkdir(exist_ok=True)

    ids = [pano_id(config.seed, c.index) for c in captures]
    lat, lon = frame.latlon(np.array([c.x for c in captures]), np.array([c.y for c in captures]))
    tasks: list[tuple[Any, tuple]] = [
        (_render_capture, (scene, c, preset.width, str(out / "panoramas" / f"{pid}.jpg")))
        for c, pid in zip(captures, ids, strict=True)
        if not config.queries_only
    ]
    q_rows = []
    for q in v1 + v2:
        qlat, qlon = (float(v[0]) for v in frame.latlon(np.array([q.x]), np.array([q.y])))
        altitude = round(12.0 + float(rng_for(qseed, "alt", q.index).uniform(0, 4)), 2)
        when = f"{q.year}:{q.month:02d}:15 {13 if not q.night else 22}:00:00"
        name = f"{q.kind}_{q.index:05d}.jpg"
        path = out / f"queries_{q.kind}" / name
        exif = exif_bytes(qlat, qlon, altitude, when) if q.kind == "v1" else b""
        tasks.append((_render_query, (scene, q, preset.query_pano_width, str(path), exif, qseed)))
        if q.kind == "v2":
            q_rows.append(
                [
                    f"queries_v2/{name}",
                    f"{qlat:.7f}",
                    f"{qlon:.7f}",
                    altitude,
                    q.heading,
                    q.pitch,
                    q.roll,
                    f"{q.year}{q.month:02d}",
                ]
            )

    _run(tasks, config.workers or default_workers())

    if not config.queries_only:
        with (out / "panoramas.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["pano_id", "lat", "lon", "heading", "timestamp", "pitch", "roll", "altitude"])
            for c, pid, la, lo in zip(captures, ids, lat, lon, strict=True):
                alt = round(10.0 + 0.01 * (c.x + c.y) % 5, 2)
                w.writerow(
                    [pid, f"{la:.7f}", f"{lo:.7f}", f"{c.heading:.3f}", f"{c.year}{c.month:02d}", "0.0", "0.0", alt]
                )
    with (out / "queries_v2.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "lat", "lon", "altitude", "heading", "pitch", "roll", "timestamp"])
        w.writerows(q_rows)
    n_panoramas = 0 if config.queries_only else len(captures)
    counts = {"panoramas": n_panoramas, "queries_v1": len(v1), "queries_v2": len(v2)}
    _write_readme(out, config, frame, counts, None if city is None else city.provenance)
    return SynthResult(str(out), n_panoramas, len(v1), len(v2), list(preset.years))


def queries_seed(config: SynthConfig) -> int:
    """The seed of the queries: ``config.queries_seed``, else the city's ``seed``."""
    return config.seed if config.queries_seed is None else config.queries_seed


def _run(tasks: list[tuple[Any, tuple]], workers: int) -> None:
    """Run every ``(fn, args)`` render task through vgdata's local executor (:func:`vgdata.jobs.local_map`).

    ``workers <= 1`` renders here, in order; otherwise in that many spawned processes. Each
    task writes its own file atomically, so the order does not change any output.
    """
    from vgdata.jobs import local_map

    for _ in local_map(_call, tasks, workers=workers):
        pass


def _call(fn: Any, args: tuple) -> None:
    fn(args)


def write_metadata_only(out: Path, config: SynthConfig, frame: Frame) -> int:
    """panoramas.csv for ``config.metadata_only`` panoramas on a street grid, without images.

    Streets every 80 m in both directions over a square sized for the count, driven in every
    year of the preset with a panorama every spacing_m; written in chunks, so millions fit.
    """
    preset = PRESETS[config.preset]
    n = config.metadata_only
    per_year = math.ceil(n / len(preset.years))
    block = 80.0
    side = max(block, math.sqrt(per_year * preset.spacing_m * block / 2))
    lines = max(1, int(side // block))
    line_len = per_year * preset.spacing_m / (2 * lines)
    written = 0
    with (out / "panoramas.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["pano_id", "lat", "lon", "heading", "timestamp", "pitch", "roll", "altitude"])
        for yi, year in enumerate(preset.years):
            rng = rng_for(config.seed, "meta", year)
            k = np.arange(min(per_year, n - written))
            street = k % (2 * lines)
            t = (k // (2 * lines)) * preset.spacing_m + rng.uniform(0, preset.spacing_m)
            offset = (street % lines) * block - side / 2 + rng.normal(0, 0.3, size=k.size)
            along = t - line_len / 2
            vertical = street >= lines
            x = np.where(vertical, offset, along)
            y = np.where(vertical, along, offset)
            heading = np.where(vertical, 0.0, 90.0) + rng.normal(0, 1.5, size=k.size)
            lat, lon = frame.latlon(x, y)
            for j in range(k.size):
                w.writerow(
                    [
                        pano_id(config.seed, written + j),
                        f"{lat[j]:.7f}",
                        f"{lon[j]:.7f}",
                        f"{heading[j] % 360:.3f}",
                        f"{year}{1 + yi % 12:02d}",
                        "0.0",
                        "0.0",
                        "12.0",
                    ]
                )
            written += k.size
    return written


def _write_readme(
    out: Path, config: SynthConfig, frame: Frame, counts: dict[str, int], provenance: dict | None = None
) -> None:
    """README.txt (and, for a footprint city, provenance.json with its source and licence)."""
    import json

    from vgdata.fsio import atomic_write_bytes

    preset = PRESETS[config.preset]
    source = []
    if provenance is not None:
        atomic_write_bytes(out / "provenance.json", (json.dumps(provenance, indent=2) + "\n").encode())
        source = [
            f"buildings and streets from: {provenance['source']}",
            f"licence of that data: {provenance['licence']}",
            f"footprints: {provenance['buildings']} buildings ({provenance['building_parts']} convex parts), "
            f"heights from {provenance['heights']}, {provenance['street_segments']} street segments "
            f"({provenance['streets']}); provenance.json has the details",
        ]
    lines = [
        "Synthetic city written by `vgdata synth` (raw inputs, SF-XL-like).",
        f"generator: {GENERATOR_VERSION}",
        f"preset: {config.preset} ({asdict(preset)})",
        f"seed: {config.seed}",
        f"queries_seed: {queries_seed(config)}",
        f"test year: {test_year(preset)} (vgdata split-test CAT --year {test_year(preset)})",
        f"origin: {config.origin[0]}, {config.origin[1]} (UTM zone {frame.zone}{frame.letter})",
        *source,
        *[f"{k}: {v}" for k, v in counts.items()],
        "",
        "panoramas/ + panoramas.csv  -> vgdata build-catalog CAT --panoramas panoramas --metadata panoramas.csv",
        "queries_v1/ (EXIF GPS)      -> vgdata add-queries CAT --collection queries_v1 --photos queries_v1",
        "queries_v2/ + queries_v2.csv -> vgdata add-queries CAT --collection queries_v2 --poses queries_v2.csv",
    ]
    (out / "README.txt").write_text("\n".join(lines) + "\n")
