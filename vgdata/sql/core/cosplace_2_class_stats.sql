-- grain: one row per CosPlace class (zone, hemisphere, class_e, class_n, class_h)
-- images: how many images the class has (CosPlace counts images, not panoramas).
create or replace macro cosplace_class_stats(m := 10, alpha := 30, coll := 'database') as table
with

classes as (
    select * from cosplace_classes(m := m, alpha := alpha, coll := coll)
),

final as (
    select zone, northern, class_e, class_n, class_h, count(*) as images
    from classes
    group by all
)

select * from final;
