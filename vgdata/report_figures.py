"""The figures of ``vgdata report``, each drawn from a small aggregate and returned as PNG bytes.

Every function takes numbers already reduced by DuckDB (a few thousand rows at most, whatever
the catalog's size) and draws them with matplotlib on an Agg canvas (no display, no global
pyplot state), so a 41M-image catalog costs the same to draw as a tiny one:

* :func:`coverage_png`: the coverage map (CosPlace Fig. 1 style), a raster of grid cells in
  UTM metres, each coloured by the most common year of its images (its modal year);
* :func:`bars_png`: images per year or per month;
* :func:`rose_png`: images per heading bin as polar bars (0 deg = north, clockwise);
* :func:`class_sizes_png`: how many CosPlace classes have k images, with the cut-off;
* :func:`group_map_png`: the CosPlace cells of a window coloured by their group (Fig. 4 style).

The page around them is :mod:`vgdata.report`'s.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np

NO_YEAR = -1
"""Year code of images without a year (drawn grey)."""


def data_uri_png(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # keeps a legend placed outside the axes
    return buf.getvalue()


def _year_colours(years: Sequence[int]) -> dict[int, tuple[float, float, float, float]]:
    """One colour per year (viridis from the oldest to the newest), grey for :data:`NO_YEAR`."""
    from matplotlib import colormaps

    known = sorted(y for y in set(years) if y != NO_YEAR)
    cmap = colormaps["viridis"]
    colours = {y: cmap(i / max(1, len(known) - 1)) for i, y in enumerate(known)}
    colours[NO_YEAR] = (0.6, 0.6, 0.6, 1.0)
    return colours


def coverage_png(
    i: np.ndarray,
    j: np.ndarray,
    year: np.ndarray,
    shape: tuple[int, int],
    cell_m: float,
    origin: tuple[float, float],
    crs_label: str,
) -> bytes:
    """The coverage map: grid cell (i east, j north) of ``cell_m`` metres coloured by its modal ``year``.

    ``i``, ``j``: 0-based cell indices from ``origin`` (UTM east, north in metres), inside ``shape``
    (cells east, cells north); ``year``: the modal year of each listed cell (:data:`NO_YEAR` when
    unknown). Empty cells stay white. Axes in metres from the origin.
    """
    from matplotlib.patches import Patch

    nx, ny = shape
    colours = _year_colours(year.tolist())
    rgba = np.ones((ny, nx, 4), dtype=np.float32)
    if len(i):
        keys = np.array(sorted(colours))
        table = np.array([colours[k] for k in keys], dtype=np.float32)
        rgba[j, i] = table[np.searchsorted(keys, year)]
    fig = _figure(7.5, 7.0)
    ax = fig.add_subplot()
    ax.imshow(rgba, origin="lower", extent=(0, nx * cell_m, 0, ny * cell_m), interpolation="nearest")
    ax.set_xlabel(f"UTM east - {origin[0]:.0f} (m)")
    ax.set_ylabel(f"UTM north - {origin[1]:.0f} (m)")
    ax.set_title(f"{crs_label}; cells of {cell_m:.3g} m, coloured by their most common year", fontsize=10)
    handles = [
        Patch(color=c, label="no year" if y == NO_YEAR else str(y))
        for y, c in sorted(colours.items())
        if y in set(year.tolist())
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="year")
    fig.tight_layout()
    return _png(fig)


def bars_png(labels: Sequence[str], values: Sequence[int], xlabel: str) -> bytes:
    """A bar chart of image counts (``values``) per ``labels`` (years or months)."""
    fig = _figure(6.0, 3.0)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x, values, color="#3461c1")
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 14 else 0, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.6)
    fig.tight_layout()
    return _png(fig)


def rose_png(bin_starts_deg: Sequence[float], counts: Sequence[int], width_deg: float) -> bytes:
    """Polar bars of images per heading bin; bins start at ``bin_starts_deg`` and are ``width_deg`` wide."""
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)  # headings are clockwise from north
    theta = np.radians(np.asarray(bin_starts_deg, dtype=np.float64) + width_deg / 2)
    ax.bar(theta, counts, width=np.radians(width_deg) * 0.95, color="#3461c1", edgecolor="white", linewidth=0.5)
    ax.set_title(f"images per {width_deg:g} deg heading bin", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def class_sizes_png(sizes: np.ndarray, classes: np.ndarray, min_images: int) -> bytes:
    """How many classes (``classes``) have each number of images (``sizes``); the cut-off as a line."""
    fig = _figure(6.0, 3.2)
    ax = fig.add_subplot()
    if len(sizes):
        top = int(sizes.max())
        if top <= 60:  # one bar per size
            edges = np.arange(1, top + 2)
        else:  # logarithmic bins, whole numbers of images
            edges = np.unique(np.geomspace(1, top + 1, 40).astype(np.int64))
            ax.set_xscale("log")
        hist, _ = np.histogram(sizes, bins=edges, weights=classes)
        ax.bar(edges[:-1], hist, width=np.diff(edges), align="edge", color="#3461c1", edgecolor="white")
    ax.axvline(min_images, color="#d62f2f", linewidth=1.2, label=f"min_images_per_class = {min_images}")
    ax.set_xlabel("images per class")
    ax.set_ylabel("classes")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.6)
    fig.tight_layout()
    return _png(fig)


def group_map_png(
    class_e: np.ndarray,
    class_n: np.ndarray,
    kept: np.ndarray,
    m: float,
    n: int,
    window: tuple[float, float, float, float],
) -> bytes:
    """CosPlace cells (``class_e``, ``class_n``: cell indices of ``m`` metres) coloured by their group.

    The group of a cell is (class_e mod n, class_n mod n) (its heading bins share the cell);
    ``kept``: whether the cell has at least one kept class; cells without one are drawn grey and
    hatched. ``window``: (east_min, north_min, east_max, north_max) in metres, drawn relative to
    its south-west corner.
    """
    from matplotlib import colormaps
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    e0, n0, e1, n1 = window
    fig = _figure(7.0, 7.0)
    ax = fig.add_subplot()
    palette = list(colormaps["tab20"].colors) + list(colormaps["tab20b"].colors)  # 40 distinct colours
    group = (np.mod(class_e, n) * n + np.mod(class_n, n)).astype(np.int64)
    kept_rects, kept_colours, dropped_rects = [], [], []
    for ce, cn, g, k in zip(class_e.tolist(), class_n.tolist(), group.tolist(), kept.tolist(), strict=True):
        rect = Rectangle((ce * m - e0, cn * m - n0), m, m)
        if k:
            kept_rects.append(rect)
            kept_colours.append(palette[g % len(palette)])
        else:
            dropped_rects.append(rect)
    if kept_rects:
        ax.add_collection(PatchCollection(kept_rects, facecolors=kept_colours, edgecolors="white", linewidths=0.4))
    if dropped_rects:
        ax.add_collection(
            PatchCollection(dropped_rects, facecolors="#dddddd", edgecolors="#999999", linewidths=0.3, hatch="//")
        )
    for ce, cn, g, k in zip(class_e.tolist(), class_n.tolist(), group.tolist(), kept.tolist(), strict=True):
        if k and (e1 - e0) / m <= 30:  # label the group when the cells are large enough to read
            ax.text(ce * m - e0 + m / 2, cn * m - n0 + m / 2, f"{g // n},{g % n}", ha="center", va="center", fontsize=6)
    ax.set_xlim(0, e1 - e0)
    ax.set_ylim(0, n1 - n0)
    ax.set_aspect("equal")
    ax.set_xlabel(f"UTM east - {e0:.0f} (m)")
    ax.set_ylabel(f"UTM north - {n0:.0f} (m)")
    ax.set_title(f"cells of {m:g} m coloured by group (class_e mod {n}, class_n mod {n}); grey: dropped", fontsize=9)
    fig.tight_layout()
    return _png(fig)
