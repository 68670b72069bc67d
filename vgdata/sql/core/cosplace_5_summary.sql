-- grain: one row per group (kept classes only), in CosPlace's order
create or replace macro cosplace_summary(
    m := 10, alpha := 30, n := 5, l := 2, min_images_per_class := 10, coll := 'database'
) as table
with

kept_classes as (
    select * from cosplace_kept_classes(
        m := m, alpha := alpha, n := n, l := l, min_images_per_class := min_images_per_class, coll := coll
    )
),

final as (
    select group_rank, group_e, group_n, group_h, count(*) as classes, sum(class_images)::bigint as images
    from kept_classes
    group by all
    order by group_rank
)

select * from final;
