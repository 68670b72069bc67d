-- grain: one row per group (kept classes only), in CosPlace's order
--
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

---------- the same from the class macro
create or replace macro cosplace_summary(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, coll := 'database',
    fraction := 1.0, seed := 0, years := null
) as table
with

cosplace_summary_kept as materialized (
    select * from cosplace_kept_classes(
        m := m, alpha := alpha, n := n, l := l, min_images_per_class := min_images_per_class, coll := coll,
        fraction := fraction, seed := seed, years := years
    )
)

select * from groups_summary('cosplace_summary_kept');
