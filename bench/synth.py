"""Synthetic-city rendering throughput, one process (= per worker).

    python bench/synth.py [--repeats 3] [--n-full 6] [--n-demo 24] [--seed 0] [--size 400]

Renders panoramas of a ``make_scene(seed, size_m=size)`` city at driving positions along its
streets (right-hand lane, facing along the street, year 2015), at SF-XL's full 3328x1664 and at
the demo's 1024x512, and prints, as medians over ``--repeats``:

* render: ``render_panorama`` alone (panoramas/s);
* JPEG q95: Pillow encoding of the rendered arrays in memory, alone (panoramas/s);
* render + JPEG: both, as a worker of ``vgdata synth`` pays them (panoramas/s);

against the targets (>= 0.3/s at full size and >= 2/s at demo size, rendering, one core). One
untimed warm-up render per size first fills the per-scene caches (facade parameters, year
state, occluders), as the first task of a worker process does.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from vgdata.synth.render import render_panorama  # noqa: E402
from vgdata.synth.scene import make_scene  # noqa: E402

TARGETS = {3328: 0.3, 1024: 2.0}


def positions(scene, n: int) -> list[tuple[float, float, float]]:
    """``n`` driving poses spread over the streets: lane a quarter width right of the centre line."""
    out = []
    streets = scene.streets
    for i in range(n):
        s = streets[i % len(streets)]
        along = 20.0 + (37.0 * (i // len(streets)) + 53.0 * i) % max(s.length - 40.0, 1.0)
        x, y = s.point(along, s.width / 4)
        out.append((x, y, s.heading))
    return out


def run(scene, width: int, n: int, repeats: int) -> dict[str, float]:
    poses = positions(scene, n)
    render_panorama(scene, *poses[0], width=width, year=2015)  # warm-up (caches)
    render_rates, jpeg_rates, both_rates = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        imgs = [render_panorama(scene, x, y, h, width=width, year=2015) for x, y, h in poses]
        t1 = time.perf_counter()
        for img in imgs:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=95)
        t2 = time.perf_counter()
        render_rates.append(n / (t1 - t0))
        jpeg_rates.append(n / (t2 - t1))
        both_rates.append(n / (t2 - t0))
    return {
        "render": statistics.median(render_rates),
        "jpeg": statistics.median(jpeg_rates),
        "both": statistics.median(both_rates),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-full", type=int, default=6, help="panoramas per repeat at 3328x1664")
    ap.add_argument("--n-demo", type=int, default=24, help="panoramas per repeat at 1024x512")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=float, default=400.0, help="city side, metres")
    args = ap.parse_args()

    t0 = time.perf_counter()
    scene = make_scene(args.seed, size_m=args.size)
    t_scene = time.perf_counter() - t0
    print(
        f"make_scene({args.seed}, size_m={args.size:g}): {len(scene.streets)} streets, "
        f"{len(scene.buildings)} buildings, {len(scene.seg_x0)} facade segments, {t_scene:.2f} s"
    )
    print(f"one process, medians of {args.repeats} repeats, panoramas/s (= per worker)")
    header = f"{'size':>10} {'n':>4} {'render':>9} {'JPEG q95':>9} {'render+JPEG':>12} {'target (render)':>16}"
    print(header)
    print("-" * len(header))
    for width, n in ((3328, args.n_full), (1024, args.n_demo)):
        r = run(scene, width, n, args.repeats)
        target = TARGETS[width]
        verdict = "met" if r["render"] >= target else "NOT met"
        print(
            f"{width}x{width // 2:<5} {n:>4} {r['render']:>9.2f} {r['jpeg']:>9.2f} {r['both']:>12.2f} "
            f"{'>= ' + format(target, 'g') + ': ' + verdict:>16}"
        )


if __name__ == "__main__":
    main()
