import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vgdata.errors import VgdataError
from vgdata.names import (
    FIELDS,
    UTM_LETTERS,
    AtName,
    NameFormatError,
    format_coord,
    format_name,
    is_at_name,
    make_name,
    parse_name,
)

SFXL = "@0544388.51@4172758.25@10@S@037.70098@-122.49646@kPnABhWJ1kA61eMNPLs1vQ@@210@@@@201606@@.jpg"
SHORT = "@0549678.37@4180874.60@10@S@037.77386@-122.43590@bZ1VXzxFCSKi9wcz8H5pZA0@201311.jpg"

# Examples written in the style each VPR-datasets-downloader script produces (values invented).
VALID = [
    SFXL,
    SHORT,
    # SF-XL query (queries_v1: empty heading) and a train crop with heading 0
    "@0551003.20@4181355.01@10@S@037.77801@-122.41924@@@@@@@@@.jpg",
    "@0544204.32@4173406.33@10@S@037.70683@-122.49854@Ab3_-dEfGhIjKlMnOpQrSt@@0@@@@200908@@.jpg",
    # downloader style: zero-padded heading/pitch, full timestamp, a note, tile
    "@0543158.27@4180593.76@10@S@037.77166@-122.50995@Xy12AbCdEfGhIjKlMnOpQr@03@090@-05@@@20190101_123000@cam0@.jpg",
    "@0543158.27@4180593.76@10@S@037.77166@-122.50995@img7@@315@000@@@20190101_1230@night rain@.png",
    # SF landmark (database: pano, tile, heading, pitch; queries: heading only) and a missing pano_id
    "@0551748.03@4182136.68@10@S@037.78512@-122.41231@33991@01@120@009@@@@@.jpg",
    "@0548912.07@4180022.40@10@S@037.76612@-122.44432@IMG_0123@@247@@@@@@.jpg",
    "@0548912.07@4180022.40@10@S@037.76612@-122.44432@None@@@@@@@@.jpg",
    # Pitts30k: pano_id = source index, tile = pitch*24 + yaw, note = "pitchP_yawY", zone 17T
    "@0584469.00@4477300.82@17@T@040.44207@-080.00399@005007@00@@@@@@pitch1_yaw1@.jpg",
    "@0585030.11@4477512.92@17@T@040.44480@-079.99700@000123@26@@@@@@pitch2_yaw3@.jpg",
    # Tokyo 24/7: database has a 22-char pano_id and tile 00..11; queries only a pano_id
    "@0387847.68@3945837.33@54@S@035.65001@0139.76111@aBcDeFgHiJkLmNoPqRsTuV@11@@@@@@@.jpg",
    "@0386890.34@3947290.65@54@S@035.66954@0139.74485@00123@@@@@@@@.jpg",
    # MSLS: timestamp YYYYMMDD, note day|night_view_city, southern hemisphere
    "@0241821.78@9862147.68@37@M@-01.24616@0036.67991@Oz2hnuwJn1QUBN95Y8SGZQ@@@@@@20180527@day_forward_nairobi@.jpg",
    "@0320700.97@5812909.40@55@H@-37.81362@0144.96306@k3Y_aB-cD9eFgHiJkLmNoP@@@@@@20160812@night_sideways_melbourne@.jpg",
    # Nordland: dummy UTM only (east 0, north 2.4 m per frame), pano_id = frame index
    "@0@00000.0@@@@@0@@@@@@@@.jpg",
    "@0@00026.1@@@@@11@@@@@@@@.jpg",
    # St Lucia: pano_id = "<sequence>_<frame>", no tile/heading
    "@0502640.26@6958503.01@56@J@-27.49711@0153.02673@100909_1000_00012@@@@@@@@.jpg",
]


@pytest.mark.parametrize("name", VALID)
def test_round_trip(name):
    n = parse_name(name)
    assert format_name(n) == name
    assert is_at_name(name)


def test_sfxl_accessors():
    n = parse_name(SFXL)
    assert n.variant == "full"
    assert n.east == 544388.51 and n.north == 4172758.25
    assert n.zone == 10 and n.letter == "S"
    assert n.latitude == 37.70098 and n.longitude == -122.49646
    assert n.pano_id == "kPnABhWJ1kA61eMNPLs1vQ"
    assert n.heading_deg == 210.0
    assert n.pitch_deg is None and n.roll_deg is None and n.altitude_m is None and n.tile_num is None
    assert (n.year, n.month) == (2016, 6)
    assert n.extension == ".jpg"


def test_empty_heading_and_timestamp():
    n = parse_name(VALID[2])
    assert n.heading_deg is None and n.year is None and n.month is None


def test_short_variant():
    n = parse_name(SHORT)
    assert n.variant == "short"
    assert n.east == 549678.37 and n.north == 4180874.60
    assert n.pano_id == "bZ1VXzxFCSKi9wcz8H5pZA0"
    assert (n.year, n.month) == (2013, 11)
    assert n.heading_deg is None and n.tile_num is None
    assert n.extension == ".jpg"


def test_downloader_accessors():
    n = parse_name(VALID[4])
    assert n.tile_num == 3 and n.heading_deg == 90.0 and n.pitch_deg == -5.0
    assert (n.year, n.month) == (2019, 1) and n.note == "cam0"
    assert parse_name(VALID[13]).latitude == -1.24616
    assert parse_name(VALID[11]).longitude == 139.76111


def test_nordland_dummy_coordinates():
    n = parse_name(VALID[16])
    assert n.east == 0.0 and n.north == 26.1 and n.pano_id == "11"
    assert n.zone is None and n.letter is None and n.latitude is None and n.longitude is None


def test_year_only_timestamp():
    n = parse_name(SFXL.replace("@201606@", "@2016@"))
    assert (n.year, n.month) == (2016, None)


@pytest.mark.parametrize("folder", ["/data/a@b/", "data/x@1@2@3/", "C:\\sf@xl\\", "/d/e@f\\g@h/"])
def test_at_in_parent_folder(folder):
    n = parse_name(folder + SFXL)
    assert n.east == 544388.51 and n.heading_deg == 210.0
    assert format_name(n) == SFXL


def _replace(name: str, field: str, value: str) -> str:
    parts = name.split("@")
    parts[1 + FIELDS.index(field)] = value
    return "@".join(parts)


@pytest.mark.parametrize(
    "field,value",
    [
        ("utm_east", "abc"),
        ("utm_east", ""),
        ("utm_north", "4172758.25x"),
        ("utm_north", "nan"),
        ("utm_zone", "61"),
        ("utm_zone", "0"),
        ("utm_zone", "1O"),
        ("utm_zone", "\u00b2"),
        ("tile", "\u0663"),
        ("heading", "\u0663"),
        ("utm_letter", "I"),
        ("utm_letter", "s"),
        ("utm_letter", "ST"),
        ("lat", "north"),
        ("lon", ""),
        ("tile", "1.5"),
        ("heading", "abc"),
        ("pitch", "1e3"),
        ("roll", "x"),
        ("altitude", "12 m"),
        ("timestamp", "201613"),
        ("timestamp", "20160132"),
        ("timestamp", "20130230"),  # 30 February
        ("timestamp", "20130229"),  # 2013 is not a leap year
        ("timestamp", "20160431_1200"),  # 31 April
        ("timestamp", "2016-06"),
        ("timestamp", "16"),
        ("timestamp", "20160601_25"),
        ("timestamp", "20160601_1200000"),
    ],
)
def test_bad_field(field, value):
    bad = _replace(SFXL, field, value)
    with pytest.raises(NameFormatError) as exc:
        parse_name(bad)
    assert exc.value.field == field
    assert str(exc.value).startswith(f"{field}: {value!r}")
    assert repr(bad) in str(exc.value)
    assert isinstance(exc.value, VgdataError)
    assert not is_at_name(bad)


@pytest.mark.parametrize(
    "bad,words",
    [
        (SFXL[1:], "'@'"),  # missing leading '@'
        (SFXL.replace("@@.jpg", "@.jpg"), "parts"),  # 15 parts
        (SFXL + "@x", "parts"),  # 17 parts
        ("@1@2@3.jpg", "parts"),
        ("", "'@'"),
    ],
)
def test_bad_structure(bad, words):
    with pytest.raises(NameFormatError, match=words):
        parse_name(bad)


@pytest.mark.parametrize("ext", ["", ".", "jpg"])
def test_bad_extension(ext):
    with pytest.raises(NameFormatError, match="^extension: ") as exc:
        parse_name(SFXL[: -len(".jpg")] + ext)
    assert exc.value.field == "extension"


def test_bad_short_variant():
    with pytest.raises(NameFormatError, match="^timestamp: "):
        parse_name(SHORT.replace("@201311.jpg", "@201399.jpg"))
    with pytest.raises(NameFormatError, match="^extension: "):
        parse_name(SHORT.replace("@201311.jpg", "@201311"))
    with pytest.raises(NameFormatError, match="^timestamp: "):
        parse_name(SHORT.replace("@201311.jpg", "@7.jpg"))


def test_atname_refuses_separators_and_half_set_pairs():
    base = parse_name(SFXL)
    kw = {f: getattr(base, f) for f in FIELDS} | {"extension": ".jpg"}
    with pytest.raises(NameFormatError, match="^note: "):
        AtName(**kw | {"note": "a@b"})
    with pytest.raises(NameFormatError, match="^pano_id: "):
        AtName(**kw | {"pano_id": "a/b"})
    with pytest.raises(NameFormatError, match="^utm_zone: "):
        AtName(**kw | {"utm_zone": ""})
    with pytest.raises(NameFormatError, match="^lon: "):
        AtName(**kw | {"lon": ""})
    with pytest.raises(NameFormatError, match="^heading: "):
        AtName(**kw | {"variant": "short"})


@pytest.mark.parametrize(
    "x,i,d,text",
    [
        (543158.274, 7, 2, "0543158.27"),
        (4180593.756, 7, 2, "4180593.76"),
        (37.771662, 3, 5, "037.77166"),
        (-33.86785, 3, 5, "-33.86785"),
        (-1.24616, 3, 5, "-01.24616"),
        (-0.000001, 3, 5, "000.00000"),
        (-122.50995, 4, 5, "-122.50995"),
        (12.49123, 4, 5, "0012.49123"),
        (-80.003994, 4, 5, "-080.00399"),
        (9.999999, 3, 5, "010.00000"),
        (26.1, 5, 1, "00026.1"),
    ],
)
def test_format_coord(x, i, d, text):
    assert format_coord(x, i, d) == text


SF = {
    "utm_east": 543158.274,
    "utm_north": 4180593.756,
    "utm_zone": 10,
    "utm_letter": "S",
    "lat": 37.771662,
    "lon": -122.509951,
}


def test_make_name_sfxl():
    s = make_name(**SF, pano_id="kPnABhWJ1kA61eMNPLs1vQ", heading=210.9, timestamp="201606")
    assert s == "@0543158.27@4180593.76@10@S@037.77166@-122.50995@kPnABhWJ1kA61eMNPLs1vQ@@210@@@@201606@@.jpg"
    assert make_name(**SF, heading=0.4, pitch=-0.5, tile=3).split("@")[8:11] == ["03", "0", "-1"]
    assert format_name(parse_name(s)) == s


def test_make_name_dvg():
    s = make_name(**SF, pano_id="p", tile=7, heading=90.7, pitch=-5.5, timestamp="20190101_123000",
                  note="n", extension=".png", style="dvg")  # fmt: skip
    assert s == "@0543158.27@4180593.76@10@S@037.77166@-122.50995@p@07@090@-05@@@20190101_123000@n@.png"
    n = parse_name(s)
    assert (n.tile_num, n.heading_deg, n.pitch_deg, n.extension) == (7, 90.0, -5.0, ".png")


@pytest.mark.parametrize(
    "kw",
    [
        {"pano_id": "a@b"},
        {"pano_id": "a/b"},
        {"note": "x@y"},
        {"timestamp": "2016-06"},
        {"style": "other"},
        {"utm_zone": 0},
        {"utm_letter": "A"},
        {"tile": -1},
        {"extension": "jpg"},
        {"heading": math.nan},
        {"lat": math.inf},
    ],
)
def test_make_name_rejects(kw):
    with pytest.raises(NameFormatError):
        make_name(**SF | kw)


@given(
    east=st.floats(100_000, 999_999.99),
    north=st.floats(0, 9_999_999.99),
    zone=st.integers(1, 60),
    letter=st.sampled_from(UTM_LETTERS),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    heading=st.floats(0, 360, exclude_max=True),
    pitch=st.one_of(st.none(), st.floats(-90, 90)),
    tile=st.one_of(st.none(), st.integers(0, 99)),
    style=st.sampled_from(["sfxl", "dvg"]),
)
def test_make_parse_property(east, north, zone, letter, lat, lon, heading, pitch, tile, style):
    s = make_name(utm_east=east, utm_north=north, utm_zone=zone, utm_letter=letter, lat=lat, lon=lon,
                  pano_id="abc_-XYZ", tile=tile, heading=heading, pitch=pitch, style=style)  # fmt: skip
    n = parse_name(s)
    assert format_name(n) == s
    assert abs(n.east - east) <= 0.005 + 1e-6 and abs(n.north - north) <= 0.005 + 1e-6
    assert abs(n.latitude - lat) <= 5e-6 + 1e-12 and abs(n.longitude - lon) <= 5e-6 + 1e-12
    assert (n.zone, n.letter, n.tile_num) == (zone, letter, tile)
    to_int = math.floor if style == "sfxl" else int
    assert n.heading_deg == to_int(heading)
    assert n.pitch_deg == (None if pitch is None else to_int(pitch))
    assert n.roll_deg is None and n.altitude_m is None


def test_leap_days_and_month_ends_are_valid():
    for ts in ("20160229", "20000229", "20130131", "20130430_235959"):
        assert parse_name(_replace(SFXL, "timestamp", ts)).timestamp == ts
    with pytest.raises(NameFormatError, match="has day 29 but month 02 of 1900 has 28"):
        parse_name(_replace(SFXL, "timestamp", "19000229"))
