"""The rendering work of ``vgdata synth`` (run in worker processes): panorama and query photo files.

Part of :mod:`vgdata.synth.generate` (which re-exports :func:`photo_az_span` and
:func:`exif_bytes`). Each task renders one file with :func:`vgdata.synth.render.render_panorama`
and writes it atomically (:func:`vgdata.fsio.atomic_write_bytes`); its bytes are a pure
function of its arguments, so neither the worker count nor the order changes any output.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from vgdata.fsio import atomic_write_bytes
from vgdata.synth.plan import rng_for


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
