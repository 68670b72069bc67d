"""The images of ``report.html``, each as a base64 data URI: the map and the thumbnails.

* the map (matplotlib, Agg canvas, PNG): database positions as small grey points, queries green
  when their first prediction is a positive (correct at R@1) and red otherwise, in metres from
  the south-west corner of the eval manifest's UTM coordinates (read with its rows, not again);
  images of other UTM zones than the most common one are left out (and counted in a note);
* thumbnails: resized with Pillow so the shorter side is ``size`` pixels, JPEG quality
  :data:`JPEG_QUALITY`; an image that is missing or cannot be decoded becomes a grey PNG
  placeholder that names the file.

Only numpy, Pillow and matplotlib are used. The page around them is :mod:`vgtrain.report`'s.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

MAP_MAX_DATABASE_POINTS = 200_000
"""Database points drawn on the map at most (evenly subsampled beyond; the legend counts all)."""
JPEG_QUALITY = 80
"""Quality of the JPEG thumbnails."""
GREEN, RED, GREY = "#1f9d3a", "#d62f2f", "#9a9a9a"
"""Colours: correct at R@1 / a positive, wrong / not a positive, the database on the map."""


def esc(value: Any) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


# ---------------------------------------------------------------- map


def _positions(manifest) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(database (N, 2), queries (Q, 2)) UTM east/north in metres, in idx order (NaN where unknown), and a note.

    From the manifest's ``database_utm`` / ``query_utm`` (read with its rows; None without UTM
    columns, then there is no map). Only the most common UTM zone is kept: metres of two zones
    do not share an origin.
    """
    db, qs = getattr(manifest, "database_utm", None), getattr(manifest, "query_utm", None)
    if db is None or qs is None:
        return None
    both = np.concatenate([np.asarray(db, np.float64), np.asarray(qs, np.float64)])
    xy, zone = both[:, :2].copy(), both[:, 2]  # NaN zone: the manifest has no utm_zone, or it is null
    ok = np.isfinite(xy).all(axis=1)
    zones, counts = np.unique(zone[ok], return_counts=True)  # NaNs count as one value
    note = ""
    if len(zones) > 1:
        keep = zones[np.argmax(counts)]
        other = ok & ~np.isnan(zone) if np.isnan(keep) else ok & (zone != keep)
        xy[other] = np.nan
        note = f"{int(other.sum())} images in other UTM zones are not shown."
    return xy[: len(db)], xy[len(db) :], note


def _map_png(db: np.ndarray, qs: np.ndarray, correct: np.ndarray) -> bytes | None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    db = db[np.isfinite(db).all(axis=1)]
    q_ok = np.isfinite(qs).all(axis=1)
    if not len(db) and not q_ok.any():
        return None
    both = np.concatenate([db, qs[q_ok]])
    origin = both.min(axis=0)
    fig = Figure(figsize=(7.5, 7.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(db):
        step = max(1, -(-len(db) // MAP_MAX_DATABASE_POINTS))
        shown = db[::step] - origin
        ax.scatter(shown[:, 0], shown[:, 1], s=4, c=GREY, linewidths=0, label=f"database ({len(db)})", zorder=1)
    for mask, colour, label in ((correct, GREEN, "correct at R@1"), (~correct, RED, "wrong at R@1")):
        pts = qs[mask & q_ok] - origin
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=22,
            c=colour,
            edgecolors="black",
            linewidths=0.4,
            label=f"queries {label} ({len(pts)})",
            zorder=2,
        )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"UTM east - {origin[0]:.0f} (m)")
    ax.set_ylabel(f"UTM north - {origin[1]:.0f} (m)")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def map_html(manifest, correct: np.ndarray) -> str:
    """The map as an ``<img>`` (plus a note on what it leaves out), or a note saying why there is none."""
    pos = _positions(manifest)
    if pos is None:
        return '<p class="note">No map: the eval manifest has no utm_east/utm_north columns.</p>'
    db, qs, note = pos
    png = _map_png(db, qs, correct)
    if png is None:
        return '<p class="note">No map: no image has UTM coordinates.</p>'
    no_xy = int((~np.isfinite(qs).all(axis=1)).sum())
    if no_xy:
        note = f"{note} {no_xy} queries without coordinates are not shown.".strip()
    img = f'<img class="map" src="{data_uri(png, "image/png")}" alt="map of the database and queries">'
    return img + (f'<p class="note">{esc(note)}</p>' if note else "")


# ---------------------------------------------------------------- thumbnails


def _placeholder(name: str, size: int, reason: str) -> bytes:
    """A grey square PNG naming the file (wrapped to the width) and why it is shown."""
    im = Image.new("RGB", (size, size), (190, 190, 190))
    draw = ImageDraw.Draw(im)
    per_line = max(4, size // 7)
    lines = [reason] + [name[i : i + per_line] for i in range(0, len(name), per_line)]
    y = 4
    for line in lines[: max(1, (size - 4) // 12)]:
        draw.text((4, y), line, fill=(60, 60, 60))
        y += 12
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _thumbnail(path: str, size: int) -> tuple[str, bool]:
    """(data URI, found): the image with its shorter side resized to ``size``, JPEG q80; else a placeholder."""
    name = os.path.basename(path) or path
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it is large
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=JPEG_QUALITY)
        return data_uri(buf.getvalue(), "image/jpeg"), True
    except FileNotFoundError:
        return data_uri(_placeholder(name, size, "missing"), "image/png"), False
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return data_uri(_placeholder(name, size, "unreadable"), "image/png"), False


def thumbnails(paths: Sequence[str], size: int) -> dict[str, tuple[str, bool]]:
    """Path -> (data URI, found) of :func:`_thumbnail`, for each distinct path, decoded on up to 8 threads."""
    unique = list(dict.fromkeys(paths))
    if not unique:
        return {}
    workers = max(1, min(8, os.cpu_count() or 1, len(unique)))
    with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding
        return dict(zip(unique, pool.map(lambda p: _thumbnail(p, size), unique), strict=True))
