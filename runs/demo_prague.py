"""The demo over real footprints: Prague-Bubenec (momepy's ``bubenec.gpkg``) instead of the invented city.

    python runs/demo_prague.py [CATALOG] [--fit] [--device auto|cpu|cuda] [--num-workers N] [--docs DIR]

A recipe like ``runs/demo.py`` (whose helpers it uses): every step is the real ``vgdata`` / ``vgtrain``
command, and the paths a later step needs come from an earlier step's ``--json`` output. With CATALOG =
``catalogs/prague`` (the default):

1. ``vgdata synth catalogs/prague-raw --preset prague --seed 0``: 144 real building polygons and 35 real
   streets of Prague-Bubenec (needs the ``prague`` extra: ``pip install 'vgdata[prague]'``), 4 years;
2. ``vgdata build-catalog``, ``add-queries`` (queries_v1, queries_v2);
3. ``split-test --year 2015``, ``split-val --size 50``, ``split-groups --min-images-per-class 3``,
   ``eval-set`` for val, queries_v1 and queries_v2, ``vgdata info``;
4. with ``--fit``: the demo's ``vgtrain fit`` schedule and ``vgtrain eval`` of the three networks, and its
   closing table (a few more minutes);
5. ``--docs DIR``: writes ``prague_panorama.jpg`` (the test-year panorama nearest the origin) and
   ``prague_crop.jpg`` (its most detailed strip crop) there, for the README, runs ``vgdata report`` on the
   catalog (``<catalog>/report.html``) and saves its coverage map and group map as ``prague_coverage.png``
   and ``prague_groups.png``.

Running it again redoes only what is out of date (as ``runs/demo.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runs import demo  # noqa: E402

PRAGUE = demo.Recipe(
    preset="prague",
    test_year=2015,
    val_size=50,
    # 4 years, a panorama every 8 m (12.5 m in the test year): ~4.5 images per 10 m x 30 degree class
    min_images_per_class=3,
    groups_num=None,
)


def write_docs_images(raw: Path, catalog: Path, docs: Path, test_year: int) -> tuple[Path, Path]:
    """The test-year panorama nearest the city's origin and its most detailed strip crop (largest JPEG)."""
    from PIL import Image

    readme = (raw / "README.txt").read_text()
    lat0, lon0 = (float(v) for v in readme.split("origin: ")[1].split(" (")[0].split(","))
    with (raw / "panoramas.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["timestamp"].startswith(str(test_year))]
    best = min(rows, key=lambda r: (float(r["lat"]) - lat0) ** 2 + ((float(r["lon"]) - lon0) * 0.64) ** 2)
    docs.mkdir(parents=True, exist_ok=True)
    pano_out, crop_out = docs / "prague_panorama.jpg", docs / "prague_crop.jpg"
    Image.open(raw / "panoramas" / f"{best['pano_id']}.jpg").save(pano_out, quality=85)
    from vgdata.catalog import Catalog

    cat = Catalog(catalog)
    root = cat.image_root("database")
    con = cat.connect()
    try:
        query = "select path from images where collection = 'database' and pano_id = ?"
        paths = [r[0] for r in con.execute(query, [best["pano_id"]]).fetchall()]
    finally:
        con.close()
    crops = [root / p for p in paths if (root / p).is_file()]
    if not crops:
        raise SystemExit(f"demo_prague: no crops of panorama {best['pano_id']} in {catalog}")
    Image.open(max(crops, key=lambda p: p.stat().st_size)).save(crop_out, quality=90)
    return pano_out, crop_out


MAPS = {"coverage": "prague_coverage.png", "groups-map": "prague_groups.png"}
"""Sections of the catalog report whose figure the README shows, and the file each is saved as."""


def write_report_maps(catalog: Path, docs: Path) -> list[Path]:
    """``vgdata report`` of the catalog (``<catalog>/report.html``), and its coverage and group maps as PNGs."""
    import base64
    import re

    out = catalog / "report.html"
    demo.vgdata("report", catalog, "--out", out)
    page = out.read_text(encoding="utf-8")
    written = []
    for section, name in MAPS.items():
        found = re.search(rf'<section id="{section}".*?src="data:image/png;base64,([^"]+)"', page, re.S)
        if found is None:
            raise SystemExit(f"demo_prague: the report has no {section} figure")
        (docs / name).write_bytes(base64.b64decode(found.group(1)))
        written.append(docs / name)
    return written


def main(argv: list[str] | None = None) -> int:
    """Build the Prague-Bubenec catalog (and optionally train and evaluate on it)."""
    ap = argparse.ArgumentParser(prog="runs/demo_prague.py", description="the demo over Prague-Bubenec's footprints")
    ap.add_argument("catalog", nargs="?", default="catalogs/prague", type=Path)
    ap.add_argument("--fit", action="store_true", help="also train and evaluate (the demo's schedule)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (training and evaluation)")
    ap.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--docs", type=Path, default=None, help="write the README's Prague images here")
    args = ap.parse_args(argv)
    catalog = args.catalog
    raw = catalog.parent / f"{catalog.name}-raw"
    manifests = demo.build_demo_catalog(catalog, raw, PRAGUE)
    print(json.dumps({k: str(v) for k, v in manifests.items()}, indent=2))
    if args.docs is not None:
        for p in [
            *write_docs_images(raw, catalog, args.docs, PRAGUE.test_year),
            *write_report_maps(catalog, args.docs),
        ]:
            print(f"  {p} ({p.stat().st_size // 1024} kB)")
    if args.fit:
        run = demo.run_folder(catalog)
        common = {"device": args.device, "num_workers": args.num_workers}
        demo.train(run, groups=manifests["groups"], val=manifests["val"], recipe=PRAGUE, **common)
        folders = demo.evaluate_all(run, manifests, **common)
        demo.print_table(folders, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
