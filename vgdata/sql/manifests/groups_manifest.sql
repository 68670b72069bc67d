-- grain: one row per image of the first `groups_num` CosPlace groups (the groups manifest)
--
-- groups_manifest(m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, groups_num := 8,
--                 coll := 'database')
--   The table vgdata.groups writes to manifests/groups_*.parquet (columns in vgdata/groups.py's
--   docstring), built on the audited macros: the classes and groups of cosplace_kept_classes()
--   (core/cosplace_3_kept_classes.sql), the images of groups_images() (core/cosplace_4_groups.sql). Ordered by group_rank,
--   class_index, image_id.
--
-- The same table in two steps, as split-groups runs it (one pass for the class table, shared
-- by the summary and the manifest, instead of one per macro):
--   create temp table kept as from cosplace_kept_classes(...);   -- the audited class table
--   from groups_summary('kept');                                 -- every group, for the report
--   from groups_manifest_from('kept', groups_num, m, alpha, coll);
-- kept_table: the name of a relation holding rows of cosplace_kept_classes() made with the
-- same m, alpha, coll, fraction, seed and years (read with query_table()); fraction, seed, years:
-- the subset of the collection (core/cosplace_1_classes.sql). groups_manifest() is exactly these calls
-- over a CTE, so the audits in vgdata/sql/tests/ (`-- needs: groups`) check what ships.

---------- the manifest's columns and order, from rows of groups_images() of the shipped groups
-- shipped_table: a relation of groups_images() rows with group_rank < groups_num (read with query_table()).
-- split-groups materialises it first on a large catalog, so that the scan of the images runs on every
-- thread and only the sort of the manifest on one (vgdata/groups.py).
create or replace macro groups_manifest_rows(shipped_table, coll := 'database') as table
with

shipped as (
    select * from query_table(shipped_table)
),

final as (
    select
        group_rank,
        class_index,
        image_id,
        coll as collection,
        path,
        utm_east,
        utm_north,
        zone as utm_zone,
        utm_epsg,
        heading,
        class_e,
        class_n,
        class_h,
        group_e,
        group_n,
        group_h
    from shipped
)

select * from final
order by group_rank, class_index, image_id;

---------- the manifest from a materialised class table
create or replace macro groups_manifest_from(
    kept_table, groups_num := 8, m := 10, alpha := 30, coll := 'database',
    fraction := 1.0, seed := 0, years := null
) as table
with

groups_manifest_shipped as materialized (
    select * from groups_images(
        kept_table, m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
    )
    where group_rank < groups_num
)

select * from groups_manifest_rows('groups_manifest_shipped', coll := coll);

---------- the manifest in one call
create or replace macro groups_manifest(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, groups_num := 8, coll := 'database',
    fraction := 1.0, seed := 0, years := null
) as table
with

groups_manifest_kept as materialized (
    select * from cosplace_kept_classes(
        m := m, alpha := alpha, n := n, l := l, min_images_per_class := min_images_per_class, coll := coll,
        fraction := fraction, seed := seed, years := years
    )
)

select * from groups_manifest_from(
    'groups_manifest_kept', groups_num := groups_num, m := m, alpha := alpha, coll := coll,
    fraction := fraction, seed := seed, years := years
);
