-- grain: one row per kept class (a class with >= min_images_per_class images)
-- group = (class_e mod n, class_n mod n, class_h mod l), floor-mod (REFERENCE.md b.1).
-- group_rank: groups in CosPlace's order, i.e. by the first image (smallest path, byte
--   order = Python's sorted()) that belongs to a kept class of the group; 0-based.
-- class_index: 0-based label of the class inside its group, classes ordered by
--   (zone, northern, class_e, class_n, class_h), zone and northern being utm_epsg spelled out
--   (so a zone's southern classes come before its northern ones). CosPlace uses Python set order
--   there, which is not reproducible; any fixed order trains the same model up to label names.
-- fraction, seed, years: the subset of the collection (cosplace_1_classes.sql).
-- Cost: two scans of the images (counts without paths, then one min(path) per group).
create or replace macro cosplace_kept_classes(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, coll := 'database',
    fraction := 1.0, seed := 0, years := null
) as table
with

class_stats as (
    select * from cosplace_class_stats(
        m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
    )
),

kept as materialized (
    select
        *,
        floor_mod(class_e, n) as group_e,
        floor_mod(class_n, n) as group_n,
        floor_mod(class_h, l) as group_h
    from class_stats
    where images >= min_images_per_class
),

group_first_paths as (
    select k.group_e, k.group_n, k.group_h, min(c.path) as first_path
    from cosplace_classes(
        m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
    ) as c
    inner join kept as k
        on
            c.utm_epsg is not distinct from k.utm_epsg
            and c.class_e = k.class_e
            and c.class_n = k.class_n
            and c.class_h = k.class_h
    group by all
),

group_ranks as (
    select group_e, group_n, group_h, (row_number() over (order by first_path) - 1)::integer as group_rank
    from group_first_paths
),

final as (
    select
        k.utm_epsg,
        k.zone,
        k.northern,
        k.class_e,
        k.class_n,
        k.class_h,
        k.group_e,
        k.group_n,
        k.group_h,
        r.group_rank,
        (row_number() over (
            partition by k.group_e, k.group_n, k.group_h order by k.zone, k.northern, k.class_e, k.class_n, k.class_h
        ) - 1)::integer as class_index,
        k.images as class_images
    from kept as k
    inner join group_ranks as r using (group_e, group_n, group_h)
)

select * from final;
