-- grain: one row per image of a kept class, with its class, group, group_rank and class_index
-- (semantics in cosplace_3_kept_classes.sql); fraction, seed, years: the subset of the collection
-- (cosplace_1_classes.sql), the same as the kept table's.
--
---------- images of the kept classes in `kept_table`, with cosplace_groups()' columns
create or replace macro groups_images(
    kept_table, m := 10, alpha := 30, coll := 'database', fraction := 1.0, seed := 0, years := null
) as table
with

classes as (
    select * from cosplace_classes(
        m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
    )
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
    inner join kept_classes as k
        on
            c.utm_epsg is not distinct from k.utm_epsg
            and c.class_e = k.class_e
            and c.class_n = k.class_n
            and c.class_h = k.class_h
)

select * from final;

---------- the same from the class macro: one materialised class table, then groups_images()
create or replace macro cosplace_groups(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, coll := 'database',
    fraction := 1.0, seed := 0, years := null
) as table
with

cosplace_groups_kept as materialized (
    select * from cosplace_kept_classes(
        m := m, alpha := alpha, n := n, l := l, min_images_per_class := min_images_per_class, coll := coll,
        fraction := fraction, seed := seed, years := years
    )
)

select * from groups_images(
    'cosplace_groups_kept', m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
);
