"""Panorama geometry: SF-XL strip crops and perspective (gnomonic) crops.

Conventions
-----------
* **Input**: an equirectangular panorama of ``W x H`` pixels with ``W == 2H``
  (2:1; SF-XL's are 3328 x 1664). :func:`check_equirect` enforces the ratio.
* **Columns**: the column coordinate ``u`` is continuous; pixel ``x`` covers
  ``[x, x + 1)`` (its centre is ``x + 0.5``). The whole width spans 360 degrees,
  ``360 / W`` degrees per pixel.
* **Azimuth** is in degrees clockwise from north (0 = north, 90 = east,
  180 = south), in ``[0, 360)``. The panorama's ``pano_heading`` is the azimuth
  of the *centre* of the image, ``u = W / 2``, and azimuth increases to the
  right::

      azimuth(u) = (pano_heading + (u - W / 2) * 360 / W) mod 360

* **Rows**: ``v`` is continuous, ``v = 0`` is the top (elevation +90 degrees),
  ``v = H`` the bottom (-90 degrees)::

      elevation(v) = 90 - v * 180 / H

SF-XL strip crops (:func:`strip_windows`, :func:`strip_crops`)
--------------------------------------------------------------
* Keep the horizontal band of rows ``[round(H*512/1664), H - round(H*640/1664))``
  (for 3328 x 1664: rows 512..1023, a 512-row band spanning elevation
  +34.6 to -20.8 degrees); see :func:`strip_rows`.
* Cut ``n_crops`` (default 12) square windows whose side equals the band height,
  with pure column slices (no resampling). A window that crosses the right edge
  continues from column 0 (wrap-around over 360 degrees).
* Window ``k`` targets the absolute azimuth ``target_k = (k * step_deg) mod 360``
  (defaults: 0, 30, ..., 330, like SF-XL's crop headings). Its left column
  ``x0`` is chosen so that the window's centre ``u_c = x0 + size / 2`` (also for
  an odd ``size``) has the *smallest* azimuth on the pixel grid that is
  ``>= target_k``; the crop's heading is the azimuth of that centre::

      heading = (pano_heading + (x0 + size / 2 - W / 2) * 360 / W) mod 360

  so ``(heading - target_k) mod 360`` lies in ``[0, 360 / W)``. ``x0`` and the
  heading are computed with exact rational arithmetic (``fractions.Fraction`` of
  the float inputs) and the heading is rounded to float64 only at the end, so it
  never falls below its target through float error.
* A panorama whose SF-XL band would be empty, or taller than the panorama is wide, raises
  :class:`PanoramaTooSmall`. One too small to give ``n_crops`` *different* windows (e.g. 12
  windows on an 8 x 4 image, several on the same columns) still gets its windows here;
  the build rejects it as "panorama too small" because its crops would share names.
  ``check_strip_params`` refuses parameters whose targets repeat (``n_crops * step_deg``
  wrapping onto an earlier target) or share an integer degree (``step_deg < 1``: names
  carry the heading as an integer).
* SF-XL's README says its released crops are labelled with the azimuth of their
  *leftmost* column; we label a crop with the azimuth of its *centre* column
  (the optical axis), per the project's design. Our windows are therefore not
  claimed to be pixel-identical to the released SF-XL crops.

Perspective crops (:func:`perspective_crop`)
--------------------------------------------
A gnomonic (rectilinear) view with optical axis at azimuth ``heading`` and
elevation ``pitch`` (degrees, up positive), horizontal field of view
``fov_deg`` measured across the full output width (outer pixel edges), square
pixels, no roll. Sampling is bilinear between pixel centres, wrapping
horizontally; rows are clamped at the poles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from PIL import Image

from vgdata.errors import VgdataError

__all__ = [
    "SFXL_BOTTOM",
    "SFXL_SIZE",
    "SFXL_TOP",
    "CropWindow",
    "PanoramaError",
    "PanoramaTooSmall",
    "check_equirect",
    "check_strip_params",
    "perspective_crop",
    "strip_crops",
    "strip_rows",
    "strip_windows",
]


class PanoramaError(VgdataError):
    """A panorama that cannot be cropped: wrong aspect ratio, bad size or angles.

    ``reason`` is the short category a build's ``rejects`` row gets for it.
    """

    def __init__(self, message: str, reason: str = "bad panorama") -> None:
        super().__init__(message)
        self.reason = reason


class PanoramaTooSmall(PanoramaError):
    """A panorama with too few pixels for its SF-XL band or for distinct crop windows."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "panorama too small")


#: SF-XL raw panorama size (width, height) in pixels.
SFXL_SIZE: tuple[int, int] = (3328, 1664)
#: Rows SF-XL drops at the top and at the bottom of a 1664-row panorama.
SFXL_TOP, SFXL_BOTTOM = 512, 640


def check_equirect(width: int, height: int, tol: float = 0.01) -> None:
    """Raise :class:`PanoramaError` unless ``width x height`` (pixels) is 2:1.

    ``tol`` is relative: the ratio ``W / H`` may differ from 2 by ``tol * 2``.
    """
    if width <= 0 or height <= 0:
        raise PanoramaTooSmall(f"bad panorama size {width}x{height}")
    ratio = width / height
    if abs(ratio - 2.0) > tol * 2.0:
        raise PanoramaError(
            f"wrong aspect ratio {width}x{height} (W/H={ratio:.2f}, expected 2:1)", "wrong aspect ratio"
        )


def strip_rows(height: int) -> tuple[int, int]:
    """Rows of the SF-XL band for a panorama ``height`` pixels tall.

    Returns ``(first kept row, end row exclusive)``: the top
    ``round(H * 512 / 1664)`` and the bottom ``round(H * 640 / 1664)`` rows are
    dropped (``(512, 1024)`` for H = 1664). Rounding is exact integer
    arithmetic (ties cannot occur for these ratios).
    """
    if height <= 0:
        raise PanoramaTooSmall(f"bad panorama height {height}")
    full = SFXL_SIZE[1]
    top = (2 * height * SFXL_TOP + full) // (2 * full)
    bottom = (2 * height * SFXL_BOTTOM + full) // (2 * full)
    if top + bottom >= height:
        raise PanoramaTooSmall(f"panorama height {height} too small for an SF-XL band")
    return top, height - bottom


@dataclass(frozen=True)
class CropWindow:
    """One square strip window in panorama pixel coordinates.

    ``x0``: left column (may be such that the window wraps past the right edge);
    ``y0``: top row; ``size``: side in pixels; ``heading``: azimuth of the
    window's centre column ``x0 + size / 2`` (degrees clockwise from north, in
    [0, 360)); ``target``: the azimuth the window was chosen for (degrees).
    """

    x0: int
    y0: int
    size: int
    heading: float
    target: float


def _finite_fraction(value: float, name: str) -> Fraction:
    value = float(value)
    if not math.isfinite(value):
        raise PanoramaError(f"{name} must be finite, got {value}", "bad parameter")
    return Fraction(value)


def check_strip_params(n_crops: int, step_deg: float) -> None:
    """Raise :class:`PanoramaError` (reason "bad parameter") unless the strip parameters give
    ``n_crops`` crops with different names on any panorama large enough.

    ``n_crops``: an integer >= 1; ``step_deg``: finite and > 0 degrees. The targets
    ``(k * step_deg) mod 360`` must fall in different whole degrees, because crop names carry
    the heading as an integer: ``step_deg < 1`` or ``n_crops * step_deg`` wrapping past 360
    onto an earlier target's degree are refused.
    """
    if isinstance(n_crops, bool) or not isinstance(n_crops, int) or n_crops < 1:
        raise PanoramaError(f"n_crops must be an integer >= 1, got {n_crops!r}", "bad parameter")
    if isinstance(step_deg, bool) or not isinstance(step_deg, int | float):
        raise PanoramaError(f"step_deg must be a number of degrees, got {step_deg!r}", "bad parameter")
    step = _finite_fraction(step_deg, "step_deg")
    if step <= 0:
        raise PanoramaError(f"step_deg must be > 0 degrees, got {step_deg!r}", "bad parameter")
    first: dict[int, int] = {}
    for k in range(n_crops):
        degree = math.floor((k * step) % 360)
        if degree in first:
            raise PanoramaError(
                f"n_crops={n_crops} crops every step_deg={step_deg:g} degrees: crops {first[degree]} and {k} "
                f"would both target degree {degree} and share a name; use fewer crops or a step >= 1 degree "
                f"with n_crops * step_deg <= 360",
                "bad parameter",
            )
        first[degree] = k


@lru_cache(maxsize=4096)
def _windows(width: int, height: int, pano_heading: float, n_crops: int, step_deg: float) -> tuple[CropWindow, ...]:
    check_equirect(width, height)
    if n_crops < 1:
        raise PanoramaError(f"n_crops must be >= 1, got {n_crops}", "bad parameter")
    y0, y1 = strip_rows(height)
    size = y1 - y0
    if size > width:
        raise PanoramaTooSmall(f"band height {size} exceeds panorama width {width}")
    ph = _finite_fraction(pano_heading, "pano_heading") % 360
    step = _finite_fraction(step_deg, "step_deg")
    half = Fraction(size, 2)
    out = []
    for k in range(n_crops):
        target = (k * step) % 360
        # Centre u_c = n + size/2 for an integer n (x0 = n mod W). With rel = (target - ph) mod 360,
        # azimuth(u_c) >= target (mod 360) <=> n >= rel * W / 360 + W/2 - size/2; take the smallest n.
        rel = (target - ph) % 360
        n = math.ceil(rel * width / 360 + Fraction(width, 2) - half)
        x0 = n % width
        exact = (ph + (x0 + half - Fraction(width, 2)) * 360 / width) % 360
        heading = float(exact)  # correctly rounded: never below an exactly representable target
        if heading >= 360.0:  # exact < 360 rounded up to 360
            heading = 0.0
        out.append(CropWindow(x0=x0, y0=y0, size=size, heading=heading, target=float(target)))
    return tuple(out)


def strip_windows(
    width: int, height: int, pano_heading: float, n_crops: int = 12, step_deg: float = 30.0
) -> list[CropWindow]:
    """The SF-XL strip windows of a ``width x height`` panorama.

    ``pano_heading``: azimuth of the panorama's centre column (degrees clockwise
    from north, any finite value; taken mod 360). Window ``k`` (``0 <= k <
    n_crops``) targets azimuth ``(k * step_deg) mod 360`` degrees; see the module
    docstring for how ``x0`` and ``heading`` are chosen.
    """
    return list(_windows(int(width), int(height), float(pano_heading), int(n_crops), float(step_deg)))


def strip_crops(
    image: Image.Image, pano_heading: float, n_crops: int = 12, step_deg: float = 30.0
) -> list[tuple[Image.Image, CropWindow]]:
    """Cut the SF-XL strip crops of an equirectangular PIL image.

    Pure column/row slices of ``image`` (same mode, no resampling), one
    ``size x size`` image per window of :func:`strip_windows`; a window crossing
    the right edge is assembled from its two pieces.
    """
    width, height = image.size
    windows = _windows(int(width), int(height), float(pano_heading), int(n_crops), float(step_deg))
    # Cropping each window straight from the image (no intermediate band copy) is the
    # fastest pure-PIL path: ~1.3 ms for 12 crops of a 3328x1664 RGB image.
    out = []
    for win in windows:
        x0, y0, size = win.x0, win.y0, win.size
        # Pillow fills any part of the box beyond the right edge with zeros (keeping mode
        # and palette); for a wrapping window paste the columns from 0 onwards there.
        crop = image.crop((x0, y0, x0 + size, y0 + size))
        if x0 + size > width:
            crop.paste(image.crop((0, y0, x0 + size - width, y0 + size)), (width - x0, 0))
        out.append((crop, win))
    return out


def perspective_crop(
    pano: np.ndarray | Image.Image,
    *,
    heading: float,
    pitch: float,
    fov_deg: float,
    out_size: tuple[int, int],
    pano_heading: float = 0.0,
) -> np.ndarray:
    """Gnomonic (rectilinear) view of an equirectangular panorama.

    ``pano``: ``(H, W, C)`` or ``(H, W)`` uint8 array, or a PIL image, 2:1.
    ``heading``: azimuth of the optical axis (degrees clockwise from north,
    absolute). ``pitch``: its elevation (degrees, up positive). ``fov_deg``:
    horizontal field of view (degrees, ``0 < fov < 180``) across the full output
    width. ``out_size``: ``(width, height)`` of the output in pixels; pixels are
    square, so the vertical FOV is ``2 * atan(tan(fov / 2) * height / width)``.
    ``pano_heading``: azimuth of the panorama's centre column (degrees).

    Output pixel ``(i, j)`` (centre at ``(i + 0.5, j + 0.5)``) looks along the
    camera ray ``(x, y, 1)`` with ``x = (i + 0.5 - w/2) * s``,
    ``y = -(j + 0.5 - h/2) * s``, ``s = 2 tan(fov/2) / w``, rotated up by
    ``pitch`` and then to azimuth ``heading``. The panorama is sampled bilinearly
    between pixel centres, wrapping horizontally and clamping rows.
    Returns a uint8 array ``(h, w, C)`` (``(h, w)`` for a 2-D input).
    """
    arr = np.asarray(pano)
    if arr.ndim not in (2, 3):
        raise PanoramaError(f"panorama must be a 2-D or 3-D array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise PanoramaError(f"panorama must be uint8, got {arr.dtype}")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[..., None]
    height, width = arr.shape[:2]
    check_equirect(width, height)
    out_w, out_h = (int(s) for s in out_size)
    if out_w <= 0 or out_h <= 0:
        raise PanoramaError(f"bad output size {out_size}")
    for name, val in (("heading", heading), ("pitch", pitch), ("pano_heading", pano_heading)):
        if not math.isfinite(float(val)):
            raise PanoramaError(f"{name} must be finite, got {val}")
    if not 0.0 < float(fov_deg) < 180.0:
        raise PanoramaError(f"fov_deg must be in (0, 180), got {fov_deg}")

    scale = 2.0 * math.tan(math.radians(fov_deg) / 2.0) / out_w
    xc = (np.arange(out_w, dtype=np.float64) + 0.5 - out_w / 2.0) * scale  # right
    yc = -(np.arange(out_h, dtype=np.float64) + 0.5 - out_h / 2.0) * scale  # up
    p = math.radians(pitch)
    cp, sp = math.cos(p), math.sin(p)
    # Rotate the ray (x, y, 1) up by the pitch: forward/up components.
    up = yc[:, None] * cp + sp  # (h, 1)
    fwd = cp - yc[:, None] * sp  # (h, 1)
    x = np.broadcast_to(xc[None, :], (out_h, out_w))
    az = np.degrees(np.arctan2(x, fwd))  # relative to heading, right positive
    el = np.degrees(np.arctan2(up, np.hypot(x, fwd)))

    # Continuous panorama coordinates, then pixel-centre coordinates (centre of pixel x is x + 0.5).
    rel = (float(heading) - float(pano_heading)) % 360.0
    fx = np.mod(width / 2.0 + (rel + az) * (width / 360.0) - 0.5, width)
    fy = np.clip((90.0 - el) * (height / 180.0) - 0.5, 0.0, height - 1.0)

    x0f = np.floor(fx)
    y0f = np.floor(fy)
    wx = (fx - x0f)[..., None]
    wy = (fy - y0f)[..., None]
    x0 = x0f.astype(np.intp) % width
    x1 = (x0 + 1) % width
    y0 = y0f.astype(np.intp)
    y1 = np.minimum(y0 + 1, height - 1)

    # Gather the four uint8 neighbours, blend in float64.
    top = arr[y0, x0] * (1.0 - wx) + arr[y0, x1] * wx
    bot = arr[y1, x0] * (1.0 - wx) + arr[y1, x1] * wx
    res = top * (1.0 - wy) + bot * wy
    out = np.clip(np.rint(res), 0, 255).astype(np.uint8)
    return out[..., 0] if squeeze else out
