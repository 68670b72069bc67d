"""Tests for vgdata.panorama: SF-XL strip windows/crops and perspective crops."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vgdata.errors import VgdataError
from vgdata.panorama import (
    SFXL_BOTTOM,
    SFXL_SIZE,
    SFXL_TOP,
    CropWindow,
    PanoramaError,
    check_equirect,
    perspective_crop,
    strip_crops,
    strip_rows,
    strip_windows,
)

W_SF, H_SF = SFXL_SIZE


def exact_azimuth(u: Fraction, width: int, pano_heading: float) -> Fraction:
    """azimuth(u) = (pano_heading + (u - W/2) * 360 / W) mod 360, exactly."""
    return (Fraction(pano_heading) + (u - Fraction(width, 2)) * 360 / width) % 360


# ---------------------------------------------------------------- rows, aspect


def test_constants():
    assert SFXL_SIZE == (3328, 1664)
    assert (SFXL_TOP, SFXL_BOTTOM) == (512, 640)


@pytest.mark.parametrize(
    ("height", "rows"),
    [(1664, (512, 1024)), (832, (256, 512)), (416, (128, 256)), (512, (158, 315)), (100, (31, 62))],
)
def test_strip_rows(height, rows):
    assert strip_rows(height) == rows


def test_check_equirect_accepts_2to1():
    check_equirect(3328, 1664)
    check_equirect(1024, 512)
    check_equirect(3330, 1664)  # within 1 %


def test_check_equirect_rejects_wrong_aspect():
    with pytest.raises(PanoramaError, match=r"wrong aspect ratio 3000x1664 \(W/H=1\.80, expected 2:1\)"):
        check_equirect(3000, 1664)
    with pytest.raises(VgdataError):
        check_equirect(1664, 1664)
    with pytest.raises(PanoramaError):
        check_equirect(0, 0)


def test_wrong_aspect_rejected_everywhere():
    with pytest.raises(PanoramaError, match="wrong aspect ratio"):
        strip_windows(3000, 1664, 0.0)
    with pytest.raises(PanoramaError, match="wrong aspect ratio"):
        strip_crops(Image.new("RGB", (3000, 1664)), 0.0)
    with pytest.raises(PanoramaError, match="wrong aspect ratio"):
        perspective_crop(np.zeros((100, 150, 3), np.uint8), heading=0, pitch=0, fov_deg=60, out_size=(8, 8))


# ---------------------------------------------------------------- windows


def test_sfxl_windows_by_hand():
    wins = strip_windows(W_SF, H_SF, 0.0)
    assert len(wins) == 12
    assert all(w.size == 512 and w.y0 == 512 for w in wins)
    assert [w.target for w in wins] == [30.0 * k for k in range(12)]
    # k=0: centre at u = W/2 -> x0 = 1664 - 256, azimuth exactly the pano heading 0.
    assert wins[0] == CropWindow(x0=1408, y0=512, size=512, heading=0.0, target=0.0)
    # k=1: need x0 + 256 - 1664 >= 30 * 3328 / 360 = 277.33 -> x0 = 1686, centre 278 px right of W/2.
    assert wins[1].x0 == 1686
    assert wins[1].heading == pytest.approx(278 * 360 / 3328, abs=1e-12)
    # k=3 (east): 90 deg = 832 px exactly -> x0 = 1408 + 832.
    assert (wins[3].x0, wins[3].heading) == (2240, 90.0)
    # k=6 (south): 1664 px -> x0 = 3072, wraps past the right edge (3072 + 512 > 3328).
    assert (wins[6].x0, wins[6].heading) == (3072, 180.0)
    # k=7: (1408 + 1941.33) mod 3328 = 21.33 -> 22.
    assert wins[7].x0 == 22
    # k=11: 330 deg = 3050.67 px -> (1408 + 3051) mod 3328 = 1131.
    assert wins[11].x0 == 1131


def test_sfxl_windows_nonzero_heading():
    # pano heading 174: north is 174 deg left of centre, i.e. at u = 1664 - 174*3328/360 = 55.47.
    wins = strip_windows(W_SF, H_SF, 174.0)
    # Window 0 centre must be >= 55.47 on the grid of u = x0 + 256: x0 + 256 = 56 -> x0 = 3328 - 200.
    assert wins[0].x0 == 3128
    assert 0.0 <= wins[0].heading < 360 / 3328


def _check_windows(width, height, pano_heading, n_crops=12, step_deg=30.0):
    wins = strip_windows(width, height, pano_heading, n_crops, step_deg)
    y0, y1 = strip_rows(height)
    d = Fraction(360, width)
    assert len(wins) == n_crops
    for k, win in enumerate(wins):
        target = (k * Fraction(step_deg)) % 360
        assert win.target == float(target)
        assert win.size == y1 - y0 and win.y0 == y0
        assert 0 <= win.x0 < width
        assert 0.0 <= win.heading < 360.0
        half = Fraction(win.size, 2)
        exact = exact_azimuth(win.x0 + half, width, pano_heading)
        # recorded heading is the (correctly rounded) azimuth of the centre column
        assert win.heading == float(exact)
        # centre azimuth in [target, target + 360/W) (mod 360) ...
        assert 0 <= (exact - target) % 360 < d
        # ... and the previous column would fall below the target: smallest such azimuth
        prev = exact_azimuth(win.x0 - 1 + half, width, pano_heading)
        assert (prev - target) % 360 >= 360 - d
        # as floats, the heading never falls below the target (targets not near 360 here)
        if target <= 360 - d:
            assert win.heading >= float(target)
            assert win.heading < float(target) + 360 / width + 1e-9
    return wins


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1000.0, max_value=1000.0, allow_nan=False, allow_infinity=False))
def test_windows_sfxl_random_headings(pano_heading):
    wins = _check_windows(W_SF, H_SF, pano_heading)
    # the 12 headings fall into 12 different 30-degree bins
    assert sorted(math.floor(w.heading / 30) for w in wins) == list(range(12))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([(3328, 1664), (1024, 512), (1000, 500), (200, 100), (4096, 2048), (26, 13)]),
    st.floats(min_value=0.0, max_value=360.0, exclude_max=True),
    st.integers(min_value=1, max_value=24),
    st.sampled_from([30.0, 15.0, 45.0, 22.5, 7.3, 100.0]),
)
def test_windows_other_sizes(size, pano_heading, n_crops, step_deg):
    _check_windows(*size, pano_heading, n_crops, step_deg)


def test_windows_odd_side():
    # H=100: band rows 31..61, side 31 (odd): centre u = x0 + 15.5.
    wins = _check_windows(200, 100, 0.0)
    assert wins[0].size == 31
    # u = 100 + 0 is the centre; x0 + 15.5 >= 100 -> x0 = 85, heading = 0.5 px = 0.9 deg.
    assert wins[0].x0 == 85
    assert wins[0].heading == 0.9


@pytest.mark.parametrize("width", [3328, 1024])
@pytest.mark.slow
def test_windows_at_grid_multiples(width):
    """Pano headings that are (float approximations of) multiples of 360/W: boundary cases."""
    height = width // 2
    for j in range(-width, 2 * width, 1 if width == 1024 else 3):
        for ph in (j * 360 / width, j * (360 / width), math.nextafter(j * 360 / width, -math.inf)):
            wins = strip_windows(width, height, ph)
            for k, win in enumerate(wins):
                assert win.heading >= 30.0 * k
                assert win.heading < 30.0 * k + 360 / width + 1e-9


def test_windows_reject_bad_args():
    with pytest.raises(PanoramaError):
        strip_windows(W_SF, H_SF, float("nan"))
    with pytest.raises(PanoramaError):
        strip_windows(W_SF, H_SF, 0.0, n_crops=0)


# ---------------------------------------------------------------- pixels


def _coded_panorama(width, height, mode):
    """Panorama whose pixel value encodes its (column, row)."""
    yy, xx = np.mgrid[0:height, 0:width]
    if mode == "I":
        arr = (yy * width + xx).astype(np.int32)
    else:
        arr = np.stack([xx % 256, xx // 256, yy % 256], axis=-1).astype(np.uint8)
    return arr, Image.fromarray(arr)


@pytest.mark.parametrize("mode", ["RGB", "I"])
@pytest.mark.parametrize("pano_heading", [0.0, 17.3, 174.0, 359.95, 90.0])
def test_strip_crops_pixels(mode, pano_heading):
    arr, img = _coded_panorama(W_SF, H_SF, mode)
    assert img.mode == mode
    crops = strip_crops(img, pano_heading)
    assert len(crops) == 12
    n_wrapped = 0
    for crop, win in crops:
        assert crop.mode == mode and crop.size == (512, 512)
        cols = (win.x0 + np.arange(512)) % W_SF
        n_wrapped += bool(cols[-1] < cols[0])
        expected = arr[512:1024][:, cols]
        got = np.asarray(crop)
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, expected)  # exact: pure slices, no resampling
        if mode == "RGB":
            # decode the column code directly as well
            np.testing.assert_array_equal(got[0, :, 0] + 256 * got[0, :, 1].astype(int), cols)
            np.testing.assert_array_equal(got[:, 0, 2], np.arange(512, 1024) % 256)
        else:
            np.testing.assert_array_equal(got[:, 0] // W_SF, np.arange(512, 1024))
    # some heading in the list makes a window cross the right edge (e.g. 0 -> x0 = 3072)
    if pano_heading == 0.0:
        assert n_wrapped == 1


@pytest.mark.parametrize("mode", ["L", "P"])
def test_strip_crops_small_gray_and_palette(mode):
    arr = np.random.default_rng(0).integers(0, 256, (100, 200), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode == "P":
        img = img.convert("P")
        img.putpalette(list(range(256)) * 3)
    crops = strip_crops(img, 123.4, n_crops=8, step_deg=45.0)
    assert len(crops) == 8
    assert any(win.x0 + win.size > 200 for _, win in crops)  # at least one wraps
    for crop, win in crops:
        assert crop.mode == mode and crop.size == (31, 31)
        if mode == "P":
            assert crop.getpalette() == img.getpalette()
        cols = (win.x0 + np.arange(31)) % 200
        np.testing.assert_array_equal(np.asarray(crop), np.asarray(img)[31:62][:, cols])


# ---------------------------------------------------------------- perspective


def _test_panorama(width=1024, height=512):
    """Smooth but structured panorama: sinusoids in both directions plus blocks (incl. across the seam)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    lon = xx / width * 2 * np.pi
    lat = yy / height * np.pi
    img = np.empty((height, width, 3))
    img[..., 0] = 128 + 100 * np.sin(6 * lon) * np.cos(5 * lat)
    img[..., 1] = 128 + 100 * np.sin(11 * lon + 1) * np.sin(9 * lat)
    img[..., 2] = 128 + 90 * np.cos(3 * lon + 2 * lat)
    img[200:260, 100:180] = (250, 20, 30)
    img[300:340, 900:1024] = (10, 240, 60)
    img[150:200, 0:40] = (30, 40, 250)
    img[240:300, 500:530] = 255
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _e2p_same_rays(pano, heading, pitch, fov_deg, out_size, pano_heading):
    """py360convert.e2p with our conventions mapped onto its parameters.

    e2p: u_deg = horizontal angle from the panorama centre, + to the right (checked in
    test_e2p_sign_convention); v_deg = elevation, + up. Its output pixel centres span
    linspace(-tan(fov/2), tan(fov/2), n) (fov between outer pixel *centres*, fovs per axis),
    ours span the outer pixel *edges* with square pixels, so pass the fovs that give the same rays.
    """
    py360convert = pytest.importorskip("py360convert")
    w, h = out_size
    t = math.tan(math.radians(fov_deg) / 2)
    h_fov = 2 * math.degrees(math.atan(t * (w - 1) / w))
    v_fov = 2 * math.degrees(math.atan(t * (h - 1) / w))
    u_deg = (heading - pano_heading + 180) % 360 - 180
    return py360convert.e2p(pano, (h_fov, v_fov), u_deg, pitch, (h, w), mode="bilinear")


def test_e2p_sign_convention():
    py360convert = pytest.importorskip("py360convert")
    height, width = 512, 1024
    yy, xx = np.mgrid[0:height, 0:width]
    pano = np.stack([xx % 256, xx // 256, yy // 2], axis=-1).astype(np.uint8)
    centre = py360convert.e2p(pano, 60, 30, 20, (9, 9))[4, 4].astype(int)
    # u_deg=+30 -> column W/2 - 0.5 + 30*W/360 = 596.8 (right); v_deg=+20 -> row 198.6 (up)
    assert abs(centre[0] + 256 * centre[1] - 596.8) <= 1
    assert abs(2 * centre[2] - 198.6) <= 2


# Measured MAE (0..255 scale) against e2p with matched rays: 1e-5 .. 7e-5 per case, max |diff| 1
# (float32 vs float64 coordinates flipping a rounding). Threshold leaves wide margin.
E2P_MAE_THRESHOLD = 0.01


@pytest.mark.parametrize(
    ("heading", "pitch", "fov", "out_size", "pano_heading"),
    [
        (0.0, 0.0, 90.0, (256, 256), 0.0),
        (45.0, 30.0, 60.0, (320, 240), 0.0),
        (170.0, -30.0, 90.0, (200, 300), 0.0),
        (359.0, 10.0, 100.0, (256, 192), 0.0),  # straddles the seam
        (10.0, -30.0, 75.0, (256, 256), 200.0),  # seam of the image at azimuth 20
        (181.0, 30.0, 120.0, (300, 200), 0.0),  # straddles the seam (u_deg ~ +-180)
        (275.0, 0.0, 30.0, (128, 128), 90.0),
    ],
)
def test_perspective_matches_py360convert(heading, pitch, fov, out_size, pano_heading):
    pano = _test_panorama()
    ours = perspective_crop(
        pano, heading=heading, pitch=pitch, fov_deg=fov, out_size=out_size, pano_heading=pano_heading
    )
    ref = _e2p_same_rays(pano, heading, pitch, fov, out_size, pano_heading)
    assert ours.shape == ref.shape == (out_size[1], out_size[0], 3)
    assert ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.mean() < E2P_MAE_THRESHOLD
    assert diff.max() <= 2


@pytest.mark.parametrize(
    ("px", "py", "pano_heading"),
    [(0, 255, 0.0), (1023, 255, 0.0), (511, 100, 37.5), (3, 400, 300.0), (800, 170, 174.0)],
)
@pytest.mark.parametrize("out_size", [(33, 33), (65, 31)])
def test_perspective_centre_pixel(px, py, pano_heading, out_size):
    """The centre output pixel looks at (azimuth=heading, elevation=pitch)."""
    pano = np.random.default_rng(1).integers(0, 256, (512, 1024, 3), dtype=np.uint8)
    # panorama pixel (px, py) has centre u = px + 0.5, v = py + 0.5
    heading = (pano_heading + (px + 0.5 - 512) * 360 / 1024) % 360
    pitch = 90 - (py + 0.5) * 180 / 512
    out = perspective_crop(pano, heading=heading, pitch=pitch, fov_deg=50, out_size=out_size, pano_heading=pano_heading)
    w, h = out_size
    np.testing.assert_array_equal(out[h // 2, w // 2], pano[py, px])


def test_perspective_orientation():
    """Right in the output is increasing azimuth, up is increasing elevation."""
    height, width = 512, 1024
    yy, xx = np.mgrid[0:height, 0:width]
    # smooth codes (bilinear-safe): R = column // 4, B = row // 2
    pano = np.stack([xx // 4, np.zeros_like(xx), yy // 2], axis=-1).astype(np.uint8)
    out = perspective_crop(pano, heading=90, pitch=0, fov_deg=40, out_size=(41, 41)).astype(int)
    assert np.all(np.diff(out[20, :, 0]) >= 0) and out[20, 0, 0] < out[20, -1, 0]
    assert np.all(np.diff(out[:, 20, 2]) >= 0) and out[0, 20, 2] < out[-1, 20, 2]
    # heading 90 with pano_heading 0: centre column at u = W/2 + W/4 = 768 (pixel-centre coord 767.5)
    assert abs(out[20, 20, 0] - 767.5 / 4) <= 1
    # pitch 0: centre row on the horizon v = 256 (pixel-centre coord 255.5)
    assert abs(out[20, 20, 2] - 255.5 / 2) <= 1


def test_perspective_accepts_pil_and_gray():
    pano = _test_panorama(512, 256)
    kw = {"heading": 200.0, "pitch": -10.0, "fov_deg": 70.0, "out_size": (64, 48), "pano_heading": 30.0}
    a = perspective_crop(pano, **kw)
    b = perspective_crop(Image.fromarray(pano), **kw)
    np.testing.assert_array_equal(a, b)
    g = perspective_crop(pano[..., 0], **kw)
    assert g.shape == (48, 64)
    np.testing.assert_array_equal(g, a[..., 0])


def test_perspective_rejects_bad_args():
    pano = _test_panorama(512, 256)
    with pytest.raises(PanoramaError):
        perspective_crop(pano, heading=0, pitch=0, fov_deg=180, out_size=(8, 8))
    with pytest.raises(PanoramaError):
        perspective_crop(pano.astype(np.float32), heading=0, pitch=0, fov_deg=60, out_size=(8, 8))
    with pytest.raises(PanoramaError):
        perspective_crop(pano, heading=0, pitch=0, fov_deg=60, out_size=(0, 8))


def test_panorama_errors_carry_their_reject_reason():
    from vgdata.panorama import PanoramaTooSmall, strip_rows

    with pytest.raises(PanoramaError) as e:
        check_equirect(3000, 1664)
    assert e.value.reason == "wrong aspect ratio"
    with pytest.raises(PanoramaTooSmall) as e:
        strip_rows(2)
    assert e.value.reason == "panorama too small"
    # 12 windows on 8 columns: still windows (pure geometry), several on the same columns
    wins = strip_windows(8, 4, 0.0)
    assert len(wins) == 12 and len({w.x0 for w in wins}) < 12


@pytest.mark.parametrize(
    ("n_crops", "step_deg", "words"),
    [
        (13, 30.0, "crops 0 and 12 would both target degree 0"),
        (4, 0.5, "crops 0 and 1 would both target degree 0"),
        (0, 30.0, "n_crops must be an integer >= 1, got 0"),
        (12, 0.0, "step_deg must be > 0 degrees, got 0.0"),
        (12, float("nan"), "step_deg must be finite, got nan"),
        (True, 30.0, "n_crops must be an integer >= 1, got True"),
    ],
)
def test_check_strip_params_refuses(n_crops, step_deg, words):
    from vgdata.panorama import check_strip_params

    with pytest.raises(PanoramaError, match=words) as e:
        check_strip_params(n_crops, step_deg)
    assert e.value.reason == "bad parameter"


def test_check_strip_params_accepts():
    from vgdata.panorama import check_strip_params

    for n_crops, step in ((12, 30.0), (1, 400.0), (24, 15.0), (360, 1.0), (7, 51.4)):
        check_strip_params(n_crops, step)
