-- grain: one row per image of the first `groups_num` CosPlace groups (the groups manifest)
--
-- groups_manifest(m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, groups_num := 8,
--                 coll := 'database')
--   The table vgdata.groups writes to manifests/groups_*.parquet (columns in vgdata/groups.py's
--   docstring), built on the audited macros: the classes and groups of cosplace_kept_classes()
--   (core/cosplace_3_kept_classes.sql), the images of cosplace_classes(). Ordered by group_rank,
--   class_index, image_id.
--
-- The same table in two steps, as split-groups runs it (one pass for the class table, shared
-- by the summary and the manifest, instead of one per macro):
--   create temp table kept as from cosplace_kept_classes(...);   -- the audited class table
--   from groups_summary('kept');                                 -- every group, for the report
--   from groups_manifest_from('kept', groups_num, m, alpha, coll);
-- kept_table: the name of a relation holding rows of cosplace_kept_classes() made with the
-- same m, alpha and coll (read with query_table()). groups_manifest() is exactly these calls
-- over a CTE, so the audits in vgdata/sql/tests/ (`-- needs: groups`) check what ships.

---------- images of the kept classes in `kept_table`, with cosplace_groups()' columns
create or replace macro groups_images(kept_table, m := 10, alpha := 30, coll := 'database') as table
with

classes as (
    select * from cosplace_classes(m := m, alpha := alpha, coll := coll)
),

kept_classes as (
    select * from query_table(kept_table)
),

final as (
    select
        c.image_id,
        c.path,
        c.zone,
        c.northern,
        c.utm_epsg,
        c.utm_east,
        c.utm_north,
        c.heading,
        c.class_e,
        c.class_n,
        c.class_h,
        k.group_e,
        k.group_n,
        k.group_h,
        k.group_rank,
        k.class_index,
        k.class_images
    from classes as c
    inner join kept_classes as k using (zone, northern, class_e, class_n, class_h)
)

select * from final;

---------- one row per group of `kept_table`, in CosPlace's order (cosplace_summary()'s columns)
create or replace macro groups_summary(kept_table) as table
with

kept_classes as (
    select * from query_table(kept_table)
),

final as (
    select group_rank, group_e, group_n, group_h, count(*) as classes, sum(class_images)::bigint as images
    from kept_classes
    group by all
    order by group_rank
)

select * from final;

---------- the manifest from a materialised class table
create or replace macro groups_manifest_from(
    kept_table, groups_num := 8, m := 10, alpha := 30, coll := 'database'
) as table
with

shipped as (
    select * from groups_images(kept_table, m := m, alpha := alpha, coll := coll)
    where group_rank < groups_num
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

---------- the manifest in one call
create or replace macro groups_manifest(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, groups_num := 8, coll := 'database'
) as table
with

groups_manifest_kept as materialized (
    select * from cosplace_kept_classes(
        m := m, alpha := alpha, n := n, l := l, min_images_per_class := min_images_per_class, coll := coll
    )
)

select * from groups_manifest_from('groups_manifest_kept', groups_num := groups_num, m := m, alpha := alpha, coll := coll);
