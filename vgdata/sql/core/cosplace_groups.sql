-- grain: one row per image of a kept class (a class with >= min_images_per_class images)
-- group = (class_e mod n, class_n mod n, class_h mod l), floor-mod (REFERENCE.md b.1).
-- group_rank: groups in CosPlace's order, i.e. by the first image (smallest path, byte order
--   = Python's sorted()) that belongs to a kept class of the group; 0-based.
-- class_index: 0-based label of the class inside its group, classes ordered by
--   (zone, northern, class_e, class_n, class_h). CosPlace uses Python set order there,
--   which is not reproducible; any fixed order trains the same model up to label names.
create or replace macro cosplace_groups(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, coll := 'database'
) as table
with

classes as (
    select * from cosplace_classes(m := m, alpha := alpha, coll := coll)
),

class_sizes as (
    select zone, northern, class_e, class_n, class_h, count(*) as class_images
    from classes
    group by all
),

kept_classes as (
    select
        *,
        floor_mod(class_e, n) as group_e,
        floor_mod(class_n, n) as group_n,
        floor_mod(class_h, l) as group_h
    from class_sizes
    where class_images >= min_images_per_class
),

indexed_classes as (
    select
        *,
        (row_number() over (
            partition by group_e, group_n, group_h order by zone, northern, class_e, class_n, class_h
        ) - 1)::integer as class_index
    from kept_classes
),

kept_images as (
    select
        c.image_id,
        c.path,
        c.zone,
        c.northern,
        c.utm_east,
        c.utm_north,
        c.heading,
        c.class_e,
        c.class_n,
        c.class_h,
        k.group_e,
        k.group_n,
        k.group_h,
        k.class_index,
        k.class_images
    from classes as c
    inner join indexed_classes as k using (zone, northern, class_e, class_n, class_h)
),

group_first_paths as (
    select group_e, group_n, group_h, min(path) as first_path
    from kept_images
    group by all
),

ranked_groups as (
    select group_e, group_n, group_h, (row_number() over (order by first_path) - 1)::integer as group_rank
    from group_first_paths
),

final as (
    select i.*, r.group_rank
    from kept_images as i
    inner join ranked_groups as r using (group_e, group_n, group_h)
)

select * from final;
