"""Parse, validate and build the '@' image names of CosPlace / SF-XL / VPR-datasets-downloader.

A full name has 15 '@'-separated fields after a leading '@'::

    @east@north@zone@letter@lat@lon@pano_id@tile@heading@pitch@roll@altitude@timestamp@note@.ext

UTM east/north are metres, lat/lon decimal degrees (WGS84), heading/pitch/roll degrees, altitude
metres, timestamp ``YYYY[MM[DD[_hh[mm[ss]]]]]`` (a real calendar date: no 30 February). Every
field is kept as raw text, so ``format_name(parse_name(s)) == basename(s)``. The SF-XL test
database also holds a 9-part "short" variant, ``@east@north@zone@letter@lat@lon@pano_id@<timestamp><ext>``.
Nordland as the downloader writes it leaves zone, letter, lat and lon empty (dummy UTM only); that
is accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import NoReturn

from vgdata.errors import VgdataError

FIELDS: tuple[str, ...] = (
    "utm_east", "utm_north", "utm_zone", "utm_letter", "lat", "lon", "pano_id",
    "tile", "heading", "pitch", "roll", "altitude", "timestamp", "note",
)  # fmt: skip
UTM_LETTERS = "CDEFGHJKLMNPQRSTUVWX"
_SHORT_FIELDS = FIELDS[:7]
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_UINT = re.compile(r"\d+", re.ASCII)
_TIMESTAMP = re.compile(r"(\d{4})(?:(\d{2})(?:(\d{2})(?:_(\d{2})(\d{2})?(\d{2})?)?)?)?", re.ASCII)
_TS_LIMITS = ((1, 12), (1, 31), (0, 23), (0, 59), (0, 59))  # month, day, hour, minute, second


class NameFormatError(VgdataError):
    """A name that is not a valid '@' name; ``field`` is the offending field (None: the structure)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def days_in_month(year: int, month: int) -> int:
    """Days of ``month`` in ``year`` (proleptic Gregorian): 30 February and 31 April do not exist."""
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _opt_float(text: str) -> float | None:
    return float(text) if text else None


@dataclass(frozen=True)
class AtName:
    """One parsed '@' name. Every field is kept as its raw text so formatting is lossless.

    Construction validates the fields (raising NameFormatError), so an AtName always formats to a
    name that parse_name accepts. ``variant`` is "full" (16 parts) or "short" (the 9-part SF-XL
    test-database variant, which has no tile/heading/pitch/roll/altitude/note).
    """

    utm_east: str
    utm_north: str
    utm_zone: str
    utm_letter: str
    lat: str
    lon: str
    pano_id: str
    tile: str
    heading: str
    pitch: str
    roll: str
    altitude: str
    timestamp: str
    note: str
    extension: str  # e.g. ".jpg", including the dot
    variant: str = "full"

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), str):
                raise NameFormatError(f"{f.name}: {getattr(self, f.name)!r} is not a string", f.name)
        name = format_name(self)

        def fail(field: str, why: str) -> NoReturn:
            raise NameFormatError(f"{field}: {getattr(self, field)!r} {why} in {name!r}", field)

        if self.variant not in ("full", "short"):
            fail("variant", "is not 'full' or 'short'")
        for f in fields(self):
            if any(c in getattr(self, f.name) for c in "@/\\"):
                fail(f.name, "contains '@', '/' or '\\'")
        for f in ("utm_east", "utm_north"):
            if not _NUMBER.fullmatch(getattr(self, f)):
                fail(f, "is not a number")
        if bool(self.utm_zone) != bool(self.utm_letter):
            fail("utm_letter" if self.utm_zone else "utm_zone", "is empty but its zone/letter partner is not")
        if self.utm_zone and not (_UINT.fullmatch(self.utm_zone) and 1 <= int(self.utm_zone) <= 60):
            fail("utm_zone", "is not an integer in 1..60")
        if self.utm_letter and (len(self.utm_letter) != 1 or self.utm_letter not in UTM_LETTERS):
            fail("utm_letter", f"is not one of {UTM_LETTERS!r}")
        if bool(self.lat) != bool(self.lon):
            fail("lon" if self.lat else "lat", "is empty but its lat/lon partner is not")
        for f in ("lat", "lon", "heading", "pitch", "roll", "altitude"):
            if getattr(self, f) and not _NUMBER.fullmatch(getattr(self, f)):
                fail(f, "is not a number")
        if self.tile and not _UINT.fullmatch(self.tile):
            fail("tile", "is not a non-negative integer")
        if self.timestamp:
            m = _TIMESTAMP.fullmatch(self.timestamp)
            if not m:
                fail("timestamp", "does not match YYYY[MM[DD[_hh[mm[ss]]]]]")
            for part, (lo, hi) in zip(m.groups()[1:], _TS_LIMITS, strict=True):
                if part is not None and not lo <= int(part) <= hi:
                    fail("timestamp", f"has a part {part!r} outside {lo}..{hi}")
            year, month, day = m.group(1), m.group(2), m.group(3)
            if day is not None and int(day) > days_in_month(int(year), int(month)):
                fail(
                    "timestamp", f"has day {day} but month {month} of {year} has {days_in_month(int(year), int(month))}"
                )
        if len(self.extension) < 2 or not self.extension.startswith("."):
            fail("extension", "does not start with '.' followed by a suffix")
        if self.variant == "short":
            for f in FIELDS[7:12] + ("note",):
                if getattr(self, f):
                    fail(f, "must be empty in the 9-part short variant")

    # Typed accessors.
    @property
    def east(self) -> float:
        """UTM easting in metres."""
        return float(self.utm_east)

    @property
    def north(self) -> float:
        """UTM northing in metres."""
        return float(self.utm_north)

    @property
    def zone(self) -> int | None:
        """UTM zone number 1..60 (None when empty, e.g. Nordland's dummy coordinates)."""
        return int(self.utm_zone) if self.utm_zone else None

    @property
    def letter(self) -> str | None:
        """UTM latitude band letter (None when empty)."""
        return self.utm_letter or None

    @property
    def latitude(self) -> float | None:
        """Latitude in decimal degrees, north positive (None when empty)."""
        return _opt_float(self.lat)

    @property
    def longitude(self) -> float | None:
        """Longitude in decimal degrees, east positive (None when empty)."""
        return _opt_float(self.lon)

    @property
    def heading_deg(self) -> float | None:
        """Heading (yaw) in degrees as written (SF-XL: clockwise from north); None when empty."""
        return _opt_float(self.heading)

    @property
    def pitch_deg(self) -> float | None:
        """Pitch in degrees; None when empty."""
        return _opt_float(self.pitch)

    @property
    def roll_deg(self) -> float | None:
        """Roll in degrees; None when empty."""
        return _opt_float(self.roll)

    @property
    def altitude_m(self) -> float | None:
        """Height/altitude in metres; None when empty."""
        return _opt_float(self.altitude)

    @property
    def tile_num(self) -> int | None:
        """Crop/tile index within a panorama; None when empty."""
        return int(self.tile) if self.tile else None

    @property
    def year(self) -> int | None:
        """Year from the timestamp; None when the timestamp is empty."""
        return int(self.timestamp[:4]) if self.timestamp else None

    @property
    def month(self) -> int | None:
        """Month 1..12 from the timestamp; None when absent."""
        return int(self.timestamp[4:6]) if len(self.timestamp) >= 6 else None


def parse_name(name_or_path: str) -> AtName:
    """Parse the basename of ``name_or_path`` ('/' and '\\' both separate folders).

    Raises NameFormatError naming the offending field.
    """
    name = re.split(r"[/\\]", name_or_path)[-1]
    if not name.startswith("@"):
        raise NameFormatError(f"name does not start with '@': {name!r}")
    parts = name.split("@")
    if len(parts) == 16:
        return AtName(*parts[1:])
    if len(parts) == 9:
        last = parts[8]
        cut = last.find(".") if "." in last else len(last)
        values = dict(zip(_SHORT_FIELDS, parts[1:8], strict=True))
        empty = dict.fromkeys(FIELDS[7:12] + ("note",), "")
        return AtName(**values, **empty, timestamp=last[:cut], extension=last[cut:], variant="short")
    raise NameFormatError(f"expected 16 '@'-separated parts (or 9), got {len(parts)} in {name!r}")


def format_name(n: AtName) -> str:
    """Exact inverse of parse_name: the basename the AtName was parsed from."""
    if n.variant == "short":
        head = "@".join(getattr(n, f) for f in _SHORT_FIELDS)
        return f"@{head}@{n.timestamp}{n.extension}"
    return "@" + "@".join(getattr(n, f) for f in FIELDS) + "@" + n.extension


def is_at_name(name: str) -> bool:
    """True when parse_name accepts ``name`` (a basename or a path)."""
    try:
        parse_name(name)
    except NameFormatError:
        return False
    return True


def format_coord(x: float, int_digits: int, dec_digits: int) -> str:
    """Fixed-point text: ``int_digits`` integer characters *including* a '-' sign, zero padded.

    Rounds to ``dec_digits`` (the downloader truncates instead, so the last digit may differ by
    one from a name it wrote); a value that rounds to zero has no sign. Examples:
    (543158.274, 7, 2) -> "0543158.27", (37.771662, 3, 5) -> "037.77166",
    (-33.86785, 3, 5) -> "-33.86785", (-1.24616, 3, 5) -> "-01.24616",
    (-122.50995, 4, 5) -> "-122.50995", (12.49123, 4, 5) -> "0012.49123".
    """
    if not math.isfinite(x):
        raise NameFormatError(f"coordinate {x!r} is not finite")
    text = f"{abs(x):.{dec_digits}f}"
    sign = "-" if x < 0 and text.strip("0.") else ""
    whole, _, frac = text.partition(".")
    return f"{sign}{whole.zfill(int_digits - len(sign))}" + (f".{frac}" if dec_digits else "")


def make_name(
    *,
    utm_east: float,
    utm_north: float,
    utm_zone: int,
    utm_letter: str,
    lat: float,
    lon: float,
    pano_id: str = "",
    tile: int | None = None,
    heading: float | None = None,
    pitch: float | None = None,
    timestamp: str = "",
    note: str = "",
    extension: str = ".jpg",
    style: str = "sfxl",
) -> str:
    """Build a full '@' name (UTM metres, lat/lon degrees, heading/pitch degrees).

    east/north: format_coord(x, 7, 2) ("0543158.27"); lat: format_coord(x, 3, 5) ("037.77166",
    "-33.86785"); lon: format_coord(x, 4, 5) ("-122.50995", "0012.49123"); zone "{:02d}";
    tile "{:02d}" or empty. style="sfxl": heading/pitch as floor() integers, not padded ("210");
    style="dvg": heading/pitch as "{:03d}" of int() truncation (VPR-datasets-downloader, "090").
    Roll and altitude are always empty. Raises NameFormatError on a field that would not parse.
    """
    if style not in ("sfxl", "dvg"):
        raise NameFormatError(f"style: {style!r} is not 'sfxl' or 'dvg'", "style")

    def angle(v: float | None) -> str:
        if v is None:
            return ""
        if not math.isfinite(v):
            raise NameFormatError(f"angle {v!r} is not finite")
        return str(math.floor(v)) if style == "sfxl" else f"{int(v):03d}"

    n = AtName(
        format_coord(utm_east, 7, 2), format_coord(utm_north, 7, 2), f"{utm_zone:02d}", utm_letter,
        format_coord(lat, 3, 5), format_coord(lon, 4, 5), pano_id,
        "" if tile is None else f"{tile:02d}", angle(heading), angle(pitch), "", "", timestamp, note,
        extension,
    )  # fmt: skip
    return format_name(n)
