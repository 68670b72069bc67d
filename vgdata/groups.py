"""``split-groups``: CosPlace classes and groups as SQL, materialised as a manifest.

The semantics are those of CosPlace (REFERENCE.md b.1-b.2), computed by the table macros
in ``vgdata/sql/core/`` (``cosplace_classes``, ``cosplace_kept_classes``); the manifest is the
macro ``groups_manifest`` of ``vgdata/sql/manifests/groups_manifest.sql``, run in its two steps
(the class table ``cosplace_kept_classes`` materialised once, then ``groups_summary`` and
``groups_manifest_from`` over it) and written by :func:`vgdata.manifest.write_manifest`:

* class = (floor(utm_east / M), floor(utm_north / M), floor(heading / alpha)), with the UTM
  zone and hemisphere in the key; exact floors (like Python's ``//``), heading wrapped into
  [0, 360) first (CosPlace would make a heading of 360 a class of its own);
* group = (class_e mod N, class_n mod N, class_h mod L) with a floor-mod;
* classes with fewer than ``min_images_per_class`` images are dropped;
* groups are ranked in CosPlace's order: by the first image, in path order, that belongs to
  a kept class of the group; so groups 0..groups_num-1 are those CosPlace trains on.

The manifest ``manifests/groups_M{M}_a{alpha}_N{N}_L{L}_mipc{mipc}_g{groups}_{fp}.parquet``
is named by its parameters and the catalog fingerprint, so a re-run on an unchanged catalog
reuses it. ``--panorama-fraction F --fraction-seed S`` computes classes and groups on a subset of
whole panoramas (:data:`FRACTION_RULE`; nested in F for one S), ``--years`` on the images of those
capture years; both go into ``vgdata.params`` and the name (``_f0.5s0``, ``_y2013-2015``), and the
whole collection (F = 1, no years) keeps today's parameters and name.

One row per image of the first ``groups_num`` groups, ordered by group_rank,
class_index, image_id (sorting 41M paths would cost more than the rest); columns: group_rank, class_index, image_id, collection, path, utm_east,
utm_north, utm_zone, utm_epsg, heading, class_e, class_n, class_h, group_e, group_n, group_h. Its metadata is
:meth:`vgdata.catalog.Catalog.manifest_metadata` (format version, image roots relative to the catalog);
a manifest of an older format is written again.

At its end split-groups runs the ``groups`` audits of ``vgdata/sql/tests/`` on the class table it
materialised and the manifest it wrote or reused (:func:`vgdata.check.audit_groups`): rows found
there are a bug (:class:`vgdata.check.AuditFailed`).
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vgdata.catalog import MANIFEST_FORMAT, Catalog, _sql_literal
from vgdata.check import audit_groups, subset_args
from vgdata.errors import UsageError, VgdataError
from vgdata.manifest import write_manifest


@dataclass
class GroupsConfig:
    """Parameters of ``vgdata split-groups`` (CosPlace's names and defaults)."""

    catalog: Path
    """Catalog folder."""
    m: float = 10
    """M: side of a class cell, metres."""
    alpha: float = 30
    """alpha: width of a heading bin, degrees."""
    n: int = 5
    """N: cells between two classes of one group, per axis."""
    l: int = 2  # noqa: E741 - the paper's name
    """L: heading bins between two classes of one group."""
    min_images_per_class: int = 10
    """Classes with fewer images are dropped."""
    groups_num: int = 8
    """Groups written to the manifest (the first ones, in CosPlace's order)."""
    collection: str = "database"
    """Collection the classes are computed on."""
    memory_limit: str = "1.5GB"
    """DuckDB memory limit; beyond it DuckDB spills to a temporary folder (the system's temp dir)."""
    panorama_fraction: float = 1.0
    """F in (0, 1]: classes and groups are computed on the panoramas whose hash u < F (:data:`FRACTION_RULE`)."""
    fraction_seed: int = 0
    """S: the seed of that hash; for one seed, the subset of a smaller F lies inside that of a larger one."""
    years: tuple[int, ...] | None = None
    """Capture years (images.year) to keep; None keeps every image."""

    def params(self) -> dict[str, Any]:
        """The parameters that define the manifest's content.

        ``panorama_fraction`` and ``fraction_seed`` appear only for F < 1, ``years`` (ascending) only when
        given: a manifest of the whole collection has today's parameters (and name).
        """
        out = {
            "M": self.m,
            "alpha": self.alpha,
            "N": self.n,
            "L": self.l,
            "min_images_per_class": self.min_images_per_class,
            "groups_num": self.groups_num,
            "collection": self.collection,
        }
        if self.panorama_fraction < 1:
            out["panorama_fraction"] = float(self.panorama_fraction)
            out["fraction_seed"] = int(self.fraction_seed)
        if self.years is not None:
            out["years"] = sorted({int(y) for y in self.years})
        return out


@dataclass
class GroupsResult:
    """What split-groups found and wrote."""

    manifest: str
    groups: list[dict[str, Any]]
    """Every group with kept classes: group_rank, group_e, group_n, group_h, classes, images."""
    total_groups: int
    manifest_images: int
    manifest_classes: int
    reused: bool
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FRACTION_RULE = (
    "a unit (a panorama: key 'p:' + pano_id; an image without pano_id: 'i:' + image_id) is kept iff "
    "int(md5(f'{seed}:{key}').hexdigest()[:13], 16) / 2**52 < F"
)
"""The panorama subset of ``--panorama-fraction F --fraction-seed seed`` (macro ``panorama_fraction_u``)."""


def _check(c: GroupsConfig) -> None:
    """Each parameter on its own: one line naming the option, before the catalog is opened."""
    for option, value, unit in (("--M", c.m, "metres"), ("--alpha", c.alpha, "degrees")):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok:
            raise UsageError(f"{option} must be a finite number of {unit} > 0, got {value!r}")
    for option, value in (
        ("--N", c.n),
        ("--L", c.l),
        ("--min-images-per-class", c.min_images_per_class),
        ("--groups-num", c.groups_num),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{option} must be a whole number >= 1, got {value!r}")
    f = c.panorama_fraction
    if not (isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f) and 0 < f <= 1):
        raise UsageError(f"--panorama-fraction must be a number in (0, 1], got {f!r}")
    s = c.fraction_seed
    if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 0:
        raise UsageError(f"--fraction-seed must be a whole number >= 0, got {s!r}")
    if c.years is not None:
        if not c.years:
            raise UsageError("--years must name at least one year, e.g. --years 2013,2015")
        for y in c.years:
            if not isinstance(y, numbers.Integral) or isinstance(y, bool):
                raise UsageError(f"--years must be whole years, e.g. --years 2013,2015, got {y!r}")


def parse_years(text: str | None) -> tuple[int, ...] | None:
    """``'2013,2015'`` -> ``(2013, 2015)``; None or blank -> None; UsageError (one line) for anything else."""
    if text is None or not text.strip():
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--years must be comma-separated whole years, e.g. 2013,2015, got {text!r}") from None


LARGE_MANIFEST_ROWS = 1_000_000
"""Manifests with more rows are written in two steps (:func:`_copy_manifest`): scan on every thread, sort on one."""


def manifest_name(c: GroupsConfig, fingerprint: str) -> str:
    """``groups_M10_a30_N5_L2_mipc10_g8_<catalog fingerprint[:12]>`` (no extension).

    A subset adds ``_f{F!r}s{seed}`` (F < 1, e.g. ``_f0.5s0``) and ``_y{years joined by -}`` (e.g.
    ``_y2013-2015``) before the fingerprint.
    """
    p = c.params()
    subset = f"_f{p['panorama_fraction']!r}s{p['fraction_seed']}" if "panorama_fraction" in p else ""
    subset += f"_y{'-'.join(str(y) for y in p['years'])}" if "years" in p else ""
    return (
        f"groups_M{c.m:g}_a{c.alpha:g}_N{c.n}_L{c.l}_mipc{c.min_images_per_class}_g{c.groups_num}"
        f"{'' if c.collection == 'database' else '_' + c.collection}{subset}_{fingerprint[:12]}"
    )


def split_groups(config: GroupsConfig) -> GroupsResult:
    """Compute CosPlace classes and groups over the catalog and write the groups manifest.

    Raises VgdataError (with how to fix it) when fewer than ``groups_num`` groups exist.
    """
    _check(config)
    cat = Catalog(config.catalog)
    build = cat.require()
    if config.collection not in build["collections"]:
        raise UsageError(f"no collection {config.collection!r} in {cat.root}; have {', '.join(build['collections'])}")
    if config.years is not None:
        _check_years(cat, config)
    args = {
        "m": float(config.m),
        "alpha": float(config.alpha),
        "n": int(config.n),
        "l": int(config.l),
        "min_images_per_class": int(config.min_images_per_class),
        "coll": config.collection,
        **subset_args(config.params()),
    }
    macro_args = ", ".join(f"{k} := ${k}" for k in args)  # named parameters, bound by DuckDB
    con = cat.connect()
    try:
        con.execute(f"set memory_limit = '{_sql_literal(config.memory_limit)}'")
        con.execute(f"set temp_directory = '{_sql_literal(tempfile.gettempdir())}/vgdata-duckdb-{os.getpid()}'")
        # The class table once (two scans of the images: counts, then a first path per group);
        # the summary and the manifest both read it (groups_manifest.sql).
        con.execute("set preserve_insertion_order = false")  # the manifest has an explicit order
        con.execute(f"create temp table kept as select * from cosplace_kept_classes({macro_args})", args)
        rel = con.sql("from groups_summary('kept')")
        cols = rel.columns
        groups = [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]
        if len(groups) < config.groups_num:
            message = _too_few_groups_message(config, groups, _coverage(con, config.collection))
            subset = {k: v for k, v in config.params().items() if k in ("panorama_fraction", "years")}
            raise VgdataError(message + (f" (classes of the subset {subset})" if subset else ""))
        chosen = groups[: config.groups_num]
        name = manifest_name(config, build["fingerprint"])
        path = cat.manifests_dir / f"{name}.parquet"
        reused = _current(path)
        if not reused:
            large = sum(g["images"] for g in chosen) > LARGE_MANIFEST_ROWS
            _write_manifest(con, cat, build, config, args, path, large=large)
        audit_groups(con, "kept", path, config.params())
    finally:
        con.close()
    return GroupsResult(
        manifest=str(path),
        groups=groups,
        total_groups=len(groups),
        manifest_images=sum(g["images"] for g in chosen),
        manifest_classes=sum(g["classes"] for g in chosen),
        reused=reused,
        params=config.params(),
    )


def _check_years(cat: Catalog, c: GroupsConfig) -> None:
    """UsageError (one line) naming the years of ``--years`` that no image of the collection was taken in."""
    con = cat.connect()
    try:
        have = [
            y
            for (y,) in con.execute(
                "select distinct year from images where collection = $coll and year is not null order by year",
                {"coll": c.collection},
            ).fetchall()
        ]
    finally:
        con.close()
    unknown = sorted({int(y) for y in c.years or ()} - set(have))
    if unknown:
        raise UsageError(
            f"--years: no image of collection {c.collection!r} was taken in {', '.join(map(str, unknown))}; "
            f"its years are {', '.join(map(str, have)) or 'unknown (no image has a year)'}"
        )


def _coverage(con, collection: str) -> tuple[int, int, int]:
    """(images, images with a heading, images with a heading and UTM) of ``collection``."""
    return con.sql(
        "select count(*), count(heading), count(*) filter (where heading is not null and utm_east is not null "
        "and utm_north is not null) from images where collection = $coll",
        params={"coll": collection},
    ).fetchall()[0]


def _too_few_groups_message(c: GroupsConfig, groups: list[dict[str, Any]], coverage: tuple[int, int, int]) -> str:
    found = len(groups)
    images, with_heading, usable = coverage
    if images and not with_heading:
        return (
            f"none of the {images} images of collection {c.collection!r} has a heading, and CosPlace classes need "
            "one; import '@' names with a heading (field 9), or give the metadata/poses CSV a heading column"
        )
    if images and not usable:
        return (
            f"none of the {images} images of collection {c.collection!r} has both a heading and UTM coordinates, "
            "and CosPlace classes need both"
        )
    if found == 0:
        return (
            f"no class of collection {c.collection!r} has >= {c.min_images_per_class} images "
            f"(M={c.m:g} m, alpha={c.alpha:g} deg); use a smaller --min-images-per-class or a larger --M/--alpha"
        )
    return (
        f"only {found} group(s) have classes with >= {c.min_images_per_class} images, but --groups-num is "
        f"{c.groups_num}; use --groups-num {found} or a smaller --min-images-per-class"
    )


def _write_manifest(
    con, cat: Catalog, build: dict, config: GroupsConfig, args: dict, path: Path, *, large: bool = False
) -> None:
    """Write the manifest under the catalog's writer lock, from the catalog ``build`` describes.

    Another writer that finished while the groups were computed changed the fingerprint:
    refused (run again). The wait for a busy catalog follows :func:`vgdata.catalog.lock_waiting`.
    """
    from vgdata.catalog import writer_lock

    with writer_lock(cat.root, task=f"write groups manifest {path.stem!r}"):
        if cat.load_build().get("fingerprint") != build["fingerprint"]:
            raise VgdataError(
                f"{cat.root} was changed by another command while split-groups ran; run split-groups again"
            )
        if not _current(path):  # else an identical run wrote it meanwhile (its name holds the fingerprint)
            _copy_manifest(con, cat, build, config, args, path, large=large)


def _current(path: Path) -> bool:
    """True when ``path`` exists in the manifest format written now (an older one is written again)."""
    if not path.is_file():
        return False
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return False
    return meta.get(b"vgdata.manifest_format") == MANIFEST_FORMAT.encode()


def _copy_manifest(
    con, cat: Catalog, build: dict, config: GroupsConfig, args: dict, path: Path, *, large: bool = False
) -> None:
    """Write the manifest: ``groups_manifest_from('kept', ...)``, or for a ``large`` one the same in two steps.

    Large (> 1M manifest rows): the shipped groups' images are first materialised on every thread
    (the scan of the collection), then sorted and written on one: DuckDB 2.0's two-thread sort of
    millions of rows with their paths overran the memory limit at 41.2M catalog rows, one thread
    sorts them in ~1 GiB. Both ways end in ``groups_manifest_rows`` (the same columns and order).
    """
    subset = subset_args(config.params())
    extra = "".join(f", {k} := ${k}" for k in subset)
    same = {k: args[k] for k in ("m", "alpha", "coll")}
    params = config.params()
    if not large:
        query = (
            "from groups_manifest_from('kept', groups_num := $groups_num, m := $m, alpha := $alpha, "
            f"coll := $coll{extra})"
        )
        query_params = {"groups_num": int(config.groups_num), **same, **subset}
        write_manifest(con, cat, build, path.stem, query, kind="groups", params=params, query_params=query_params)
        return
    con.execute(
        "create or replace temp table shipped as select * from groups_images('kept', m := $m, alpha := $alpha, "
        f"coll := $coll{extra}) where group_rank < $groups_num",
        {"groups_num": int(config.groups_num), **same, **subset},
    )
    threads = int(con.execute("select current_setting('threads')").fetchone()[0])
    con.execute("set threads = 1")
    try:
        query = "from groups_manifest_rows('shipped', coll := $coll)"
        write_manifest(
            con, cat, build, path.stem, query, kind="groups", params=params, query_params={"coll": args["coll"]}
        )
    finally:
        con.execute(f"set threads = {threads}")  # the audits scan the class table again: every thread
        con.execute("drop table if exists shipped")
