"""``vgdata synth``: write the raw inputs of an SF-XL-like dataset for a synthetic city.

What it writes under OUT_DIR (the same inputs a user would bring; nothing downstream
treats them specially):

* ``panoramas/<pano_id>.jpg`` + ``panoramas.csv`` (pano_id, lat, lon, heading, timestamp,
  pitch, roll, altitude): 2:1 equirectangular captures along streets, several years;
* ``queries_v1/*.jpg``: perspective photos with EXIF GPS (lat/lon, altitude, time) and no
  heading, like SF-XL's Flickr queries; some at night, some grayscale, some occluded;
* ``queries_v2/*.jpg`` + ``queries_v2.csv`` (path, lat, lon, altitude, heading, pitch, roll,
  timestamp): daytime perspective photos with their 6DoF poses;
* ``README.txt``: preset, seed, queries seed, origin, counts and the generator version.

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
import hashlib
import io
import math
from base64 import urlsafe_b64encode
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from vgdata.errors import UsageError
from vgdata.fsio import atomic_write_bytes

# 2: queries by the kerb, looking along or across the street;
# 3: demo = a neighbourhood (several streets, 6 years, a test year), street ends left undriven,
#    queries spread over the driven streets by length and kept off crossing roadways, queries_seed
GENERATOR_VERSION = "vgdata-synth/3"
SF_ORIGIN = (37.7749, -122.4194)


@dataclass(frozen=True)
class Preset:
    """Sizes of one synthetic dataset."""

    size_m: float
    """Side of the square city, metres."""
    width: int
    """Panorama width in pixels (height = width / 2); SF-XL's is 3328."""
    years: tuple[int, ...]
    """Capture years; every year drives the same streets with a new phase and new occluders."""
    drive_m: float
    """Street length driven per year, metres (the streets nearest the centre first); every year
    drives the same streets."""
    spacing_m: float
    """Metres between consecutive panoramas of one drive."""
    queries_v1: int
    """Flickr-style photos (EXIF GPS, no heading)."""
    queries_v2: int
    """Photos with 6DoF poses."""
    query_pano_width: int
    """Width of the panorama rendered at a query position, from which the photo is cut."""
    test_year: int | None = None
    """The year whose panoramas make the one-year test database (``vgdata split-test --year``);
    every query is placed within 30 m of one of its panoramas. None: the last year."""
    drive_margin_m: float = 0.0
    """Metres left undriven at both ends of every street (the city's edge, with nothing beyond)."""
    test_spacing_m: float | None = None
    """Metres between panoramas in the test year (None: ``spacing_m``). The chance level of the
    one-year test database (positives within 25 m / its size) does not depend on it, its cost does."""


PRESETS: dict[str, Preset] = {
    "tiny": Preset(200, 512, (2013, 2017), 60, 5.0, 6, 4, 1024),
    # A neighbourhood of a 500 m city: the 6 streets nearest its centre (2 north-south, 3 east-west,
    # the diagonal; 420-538 m each, 40 m of either end left undriven), 2.64 km driven in each of 5 years:
    # 2013 (SF-XL's test year) a panorama every 12.5 m for the one-year test database, the others every
    # 6.25 m. A query has ~50 m of street within 25 m against the test year's ~2.6 km: chance at R@1
    # ~2-3% whatever the spacing. 640 px panoramas give 98 px strip crops (the demo trains at 96 px):
    # what keeps `make demo` within 12 minutes on 2 cores. Classes of the defaults (M=10, alpha=30) get
    # ~7 images (4 years x 1.6 + 0.8), hence the demo's --min-images-per-class 5 (EigenPlaces' default).
    "demo": Preset(
        500,
        640,
        (2009, 2011, 2013, 2015, 2017),
        2638,
        6.25,
        320,
        320,
        1024,
        test_year=2013,
        drive_margin_m=40,
        test_spacing_m=12.5,
    ),  # fmt: skip
    "city": Preset(1200, 3328, (2009, 2011, 2013, 2015, 2017, 2019, 2021), 2400, 3.0, 1000, 598, 3328),
}


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


@dataclass
class SynthResult:
    out_dir: str
    panoramas: int
    queries_v1: int
    queries_v2: int
    years: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- randomness and ids


def rng_for(seed: int, purpose: str, index: int = 0) -> np.random.Generator:
    """An independent, reproducible stream for (seed, purpose, index)."""
    digest = hashlib.blake2b(f"{seed}/{purpose}/{index}".encode(), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest, "big")))


def pano_id(seed: int, index: int) -> str:
    """A 22-character id like Street View's, stable for (seed, index)."""
    digest = hashlib.blake2b(f"pano/{seed}/{index}".encode(), digest_size=16).digest()
    return urlsafe_b64encode(digest).decode().rstrip("=")


# ---------------------------------------------------------------- the local frame


@dataclass(frozen=True)
class Frame:
    """The scene's metres east/north of the origin, tied to the origin's UTM zone."""

    east0: float
    north0: float
    zone: int
    letter: str

    @classmethod
    def at(cls, lat: float, lon: float) -> Frame:
        from vgdata import geo

        bad = geo.invalid_latlon_reasons(np.array([lat]), np.array([lon]))[0]
        if bad is not None:
            raise UsageError(f"--origin {lat},{lon}: {bad}")
        u = geo.latlon_to_utm(np.array([lat]), np.array([lon]))
        return cls(float(u.east[0]), float(u.north[0]), int(u.zone[0]), str(u.letter[0]))

    def latlon(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from vgdata import geo

        zone = np.full(np.shape(x), self.zone)
        letter = np.full(np.shape(x), self.letter)
        return geo.utm_to_latlon(self.east0 + np.asarray(x), self.north0 + np.asarray(y), zone, letter)


# ---------------------------------------------------------------- capture plan


@dataclass(frozen=True)
class Capture:
    """One panorama to render: position (local metres), heading (degrees), year, month."""

    index: int
    x: float
    y: float
    heading: float
    year: int
    month: int


def bearing(dx: float, dy: float) -> float:
    """Degrees clockwise from (grid) north of the direction (dx east, dy north), in [0, 360)."""
    return math.degrees(math.atan2(dx, dy)) % 360.0


def driven_streets(streets: list, preset: Preset) -> list[tuple[Any, float, float]]:
    """The streets driven every year, as ``(street, start, stop)`` metres from ``p0``.

    Nearest the centre first, until ``drive_m`` metres; ``drive_margin_m`` is left undriven at
    both ends of every street (the last one chosen is cut short to make up ``drive_m``).
    """
    ordered = sorted(streets, key=lambda s: (math.hypot((s.p0[0] + s.p1[0]) / 2, (s.p0[1] + s.p1[1]) / 2), s.p0))
    chosen, total = [], 0.0
    margin = preset.drive_margin_m
    for s in ordered:
        if total >= preset.drive_m:
            break
        length = math.dist(s.p0, s.p1) - 2 * margin
        if length <= 0:
            continue
        chosen.append((s, margin, margin + min(length, preset.drive_m - total)))
        total += length
    return chosen


def plan_captures(streets: list, preset: Preset, seed: int) -> list[Capture]:
    """Drives: every year, each chosen street from p0 towards p1, a panorama every spacing_m.

    The car keeps to the right-hand lane, clear of the parked cars (3.6 m inside the kerb, at
    least 1.5 m right of the centre line), with a new start phase, ~0.3 m lateral jitter and
    ~1.5 degrees heading jitter per year.
    """
    captures: list[Capture] = []
    for year in preset.years:
        rng = rng_for(seed, "drive", year)
        month = int(rng.integers(1, 13))
        for street, start, stop in driven_streets(streets, preset):
            (x0, y0), (x1, y1) = street.p0, street.p1
            full = math.dist(street.p0, street.p1)
            ux, uy = (x1 - x0) / full, (y1 - y0) / full
            rx, ry = uy, -ux  # right of the travel direction
            heading = bearing(ux, uy)
            spacing = preset.spacing_m
            if year == test_year(preset) and preset.test_spacing_m is not None:
                spacing = preset.test_spacing_m
            t = start + float(rng.uniform(0, spacing))
            while t <= stop:
                lateral = max(1.5, street.width / 2 - 3.6) + float(rng.normal(0, 0.3))
                captures.append(
                    Capture(
                        index=len(captures),
                        x=round(x0 + ux * t + rx * lateral, 3),
                        y=round(y0 + uy * t + ry * lateral, 3),
                        heading=round((heading + float(rng.normal(0, 1.5))) % 360.0, 3),
                        year=year,
                        month=month,
                    )
                )
                t += spacing
    return captures


@dataclass(frozen=True)
class QueryPlan:
    """One query photo: where, which way, what it looks like."""

    kind: str  # "v1" or "v2"
    index: int
    x: float
    y: float
    heading: float
    pitch: float
    roll: float
    fov: float
    size: tuple[int, int]
    year: int
    month: int
    night: bool = False
    grayscale: bool = False
    occluded: bool = False


def test_year(preset: Preset) -> int:
    """The year of the preset's one-year test database (``test_year``, else the last year)."""
    return max(preset.years) if preset.test_year is None else preset.test_year


def plan_queries(
    kind: str, n: int, captures: list[Capture], streets: list, preset: Preset, seed: int
) -> list[QueryPlan]:
    """Photos taken by the kerb (up to 1 m onto the sidewalk) of a driven street (picked by driven
    length), not on the roadway of a crossing street, 0-30 m from a panorama of the test year,
    looking along the street (either way) or across it, off by a normal 25 degrees clipped to 40.
    ``seed`` is the queries seed."""
    plans = []
    driven = driven_streets(streets, preset)
    weights = np.array([stop - start for _, start, stop in driven])
    weights /= weights.sum()
    last_year = max(preset.years)
    year = test_year(preset)
    anchors = np.array([(c.x, c.y) for c in captures if c.year == year] or [(c.x, c.y) for c in captures])

    def on_a_roadway(x: float, y: float) -> bool:  # streets run edge to edge: their lines will do
        for s in streets:
            (sx0, sy0), (sx1, sy1) = s.p0, s.p1
            n = math.dist(s.p0, s.p1)
            if abs((x - sx0) * (sy1 - sy0) - (y - sy0) * (sx1 - sx0)) / n < s.width / 2 - 1e-6:
                return True
        return False

    for i in range(n):
        rng = rng_for(seed, f"query_{kind}", i)
        street, start, stop = driven[int(rng.choice(len(driven), p=weights))]
        (x0, y0), (x1, y1) = street.p0, street.p1
        full = math.dist(street.p0, street.p1)
        ux, uy = (x1 - x0) / full, (y1 - y0) / full
        side = 1.0 if rng.random() < 0.5 else -1.0
        for _ in range(20):  # a point by the kerb, off the roadways, within 30 m of a panorama of the test year
            t = float(rng.uniform(start, stop))
            # from the kerb edge to 1 m onto the sidewalk (the parking lane has parked cars in it)
            lateral = side * (street.width / 2 + float(rng.uniform(0.0, 1.0)))
            x, y = x0 + ux * t + uy * lateral, y0 + uy * t - ux * lateral
            if np.hypot(anchors[:, 0] - x, anchors[:, 1] - y).min() <= 30.0 and not on_a_roadway(x, y):
                break
        along = bearing(ux, uy)
        # along the street either way, or across it (the facades opposite); never at the facade on
        # the photographer's own side, 1-4 m away, which would fill the photo with one wall.
        # side +1 is the right of (ux, uy), whose bearing is along + 90, so across is along - 90 * side.
        look = {0: along, 1: (along + 180) % 360, 2: (along - 90 * side) % 360}[int(rng.integers(3))]
        heading = (look + float(np.clip(rng.normal(0, 25), -40, 40))) % 360.0
        aspect = [(4, 3), (3, 4), (16, 9), (1, 1)][int(rng.integers(4))]
        long_side = int(rng.integers(400, 720))
        size = (long_side, round(long_side * aspect[1] / aspect[0]))
        if aspect[1] > aspect[0]:
            size = (round(long_side * aspect[0] / aspect[1]), long_side)
        v1 = kind == "v1"
        roll = 0.0 if v1 else round(float(rng.normal(0, 2.0)), 2)
        plans.append(
            QueryPlan(
                kind=kind,
                index=i,
                x=round(x, 3),
                y=round(y, 3),
                heading=round(heading, 2),
                pitch=round(float(rng.uniform(-5, 15)), 2),
                roll=roll,
                fov=round(float(rng.uniform(45, 85)), 1),
                size=size,
                year=int(rng.choice([*preset.years, last_year + 1])),
                month=int(rng.integers(1, 13)),
                night=v1 and rng.random() < 0.15,
                grayscale=v1 and rng.random() < 0.15,
                occluded=v1 and rng.random() < 0.15,
            )
        )
    return plans


# ---------------------------------------------------------------- rendering work (worker processes)


def _render_capture(args: tuple) -> None:
    from PIL import Image

    from vgdata.synth.render import render_panorama

    scene, capture, width, path = args
    img = render_panorama(scene, capture.x, capture.y, capture.heading, width=width, year=capture.year)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=92)
    atomic_write_bytes(Path(path), buf.getvalue())


def _render_query(args: tuple) -> None:
    from PIL import Image, ImageDraw

    from vgdata.panorama import perspective_crop
    from vgdata.synth.render import render_panorama

    scene, q, pano_width, path, exif, seed = args
    w, h = q.size
    pad = 1.1 if q.roll else 1.0  # rolled photos are cut from a larger view, then rotated and cropped
    big = (round(w * pad), round(h * pad))
    # only the columns the photo samples are rendered (the photo's pixels are those of a full render)
    span = photo_az_span(q.fov * pad, big, q.pitch) + 3 * 360.0 / pano_width
    pano = render_panorama(scene, q.x, q.y, q.heading, width=pano_width, year=q.year, night=q.night, az_span=span)
    view = perspective_crop(
        pano, heading=q.heading, pitch=q.pitch, fov_deg=q.fov * pad, out_size=big, pano_heading=q.heading
    )
    img = Image.fromarray(view)
    if q.roll:
        img = img.rotate(-q.roll, resample=Image.Resampling.BICUBIC)
        left, top = (big[0] - w) // 2, (big[1] - h) // 2
        img = img.crop((left, top, left + w, top + h))
    if q.occluded:
        rng = rng_for(seed, f"occluder_{q.kind}", q.index)
        draw = ImageDraw.Draw(img)
        cx, cy = float(rng.uniform(0.2, 0.8)) * w, float(rng.uniform(0.4, 0.9)) * h
        rw, rh = float(rng.uniform(0.15, 0.3)) * w, float(rng.uniform(0.3, 0.6)) * h
        shade = tuple(int(c) for c in rng.integers(20, 120, size=3))
        draw.ellipse((cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2), fill=shade)
    if q.grayscale:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, exif=exif)
    atomic_write_bytes(Path(path), buf.getvalue())


def photo_az_span(fov_deg: float, size: tuple[int, int], pitch: float) -> float:
    """Largest |azimuth| (degrees from the optical axis) that a gnomonic photo samples.

    ``fov_deg`` horizontal, ``size`` (width, height) px, ``pitch`` degrees (as
    :func:`vgdata.panorama.perspective_crop`). Along a row the azimuth grows with |x|; across rows
    with the ray's forward component, which is linear in the row: the four corners bound it.
    """
    w, h = size
    xmax = math.tan(math.radians(fov_deg) / 2.0)
    ymax = xmax * h / w
    p = math.radians(pitch)
    fwd = min(math.cos(p) - y * math.sin(p) for y in (-ymax, ymax))
    return 180.0 if fwd <= 0 else math.degrees(math.atan2(xmax, fwd))


def exif_bytes(lat: float, lon: float, altitude: float, when: str) -> bytes:
    """EXIF with a GPS IFD (lat/lon as degrees/minutes/seconds, altitude) and DateTimeOriginal."""
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    def dms(value: float) -> tuple:
        value = abs(value)
        d = int(value)
        m = int((value - d) * 60)
        s = (value - d - m / 60) * 3600
        return (IFDRational(d, 1), IFDRational(m, 1), IFDRational(round(s * 10000), 10000))

    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps.update(
        {
            0: b"\x02\x03\x00\x00",
            1: "N" if lat >= 0 else "S",
            2: dms(lat),
            3: "E" if lon >= 0 else "W",
            4: dms(lon),
            5: b"\x00" if altitude >= 0 else b"\x01",
            6: IFDRational(round(abs(altitude) * 100), 100),
        }
    )
    exif.get_ifd(0x8769)[0x9003] = when
    return exif.tobytes()


# ---------------------------------------------------------------- the command


def synth(config: SynthConfig) -> SynthResult:
    """Generate the city and write its raw inputs under ``config.out_dir``."""
    from vgdata.jobs import default_workers
    from vgdata.synth.scene import make_scene

    if config.preset not in PRESETS:
        raise UsageError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[config.preset]
    frame = Frame.at(*config.origin)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.metadata_only:
        n = write_metadata_only(out, config, frame)
        _write_readme(out, config, frame, {"panoramas (metadata only)": n})
        return SynthResult(str(out), n, 0, 0, list(preset.years))

    scene = make_scene(config.seed, size_m=preset.size_m)
    captures = plan_captures(scene.streets, preset, config.seed)
    qseed = queries_seed(config)
    v1 = plan_queries("v1", preset.queries_v1, captures, scene.streets, preset, qseed)
    v2 = plan_queries("v2", preset.queries_v2, captures, scene.streets, preset, qseed)
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
    _write_readme(out, config, frame, counts)
    return SynthResult(str(out), n_panoramas, len(v1), len(v2), list(preset.years))


def queries_seed(config: SynthConfig) -> int:
    """The seed of the queries: ``config.queries_seed``, else the city's ``seed``."""
    return config.seed if config.queries_seed is None else config.queries_seed


def _run(tasks: list[tuple[Any, tuple]], workers: int) -> None:
    if workers <= 1:
        for fn, args in tasks:
            fn(args)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, args) for fn, args in tasks]
        for fut in futures:
            fut.result()


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


def _write_readme(out: Path, config: SynthConfig, frame: Frame, counts: dict[str, int]) -> None:
    preset = PRESETS[config.preset]
    lines = [
        "Synthetic city written by `vgdata synth` (raw inputs, SF-XL-like).",
        f"generator: {GENERATOR_VERSION}",
        f"preset: {config.preset} ({asdict(preset)})",
        f"seed: {config.seed}",
        f"queries_seed: {queries_seed(config)}",
        f"test year: {test_year(preset)} (vgdata split-test CAT --year {test_year(preset)})",
        f"origin: {config.origin[0]}, {config.origin[1]} (UTM zone {frame.zone}{frame.letter})",
        *[f"{k}: {v}" for k, v in counts.items()],
        "",
        "panoramas/ + panoramas.csv  -> vgdata build-catalog CAT --panoramas panoramas --metadata panoramas.csv",
        "queries_v1/ (EXIF GPS)      -> vgdata add-queries CAT --collection queries_v1 --photos queries_v1",
        "queries_v2/ + queries_v2.csv -> vgdata add-queries CAT --collection queries_v2 --poses queries_v2.csv",
    ]
    (out / "README.txt").write_text("\n".join(lines) + "\n")
