-- grain: one row per CosPlace class (utm_epsg, class_e, class_n, class_h); zone and northern spell
-- utm_epsg out (see cosplace_1_classes.sql)
-- images: how many images the class has (CosPlace counts images, not panoramas).
-- fraction, seed, years: the subset of the collection (cosplace_1_classes.sql).
create or replace macro cosplace_class_stats(
    m := 10, alpha := 30, coll := 'database', fraction := 1.0, seed := 0, years := null
) as table
with

classes as (
    select * from cosplace_classes(
        m := m, alpha := alpha, coll := coll, fraction := fraction, seed := seed, years := years
    )
),

final as (
    select utm_epsg, zone, northern, class_e, class_n, class_h, count(*) as images
    from classes
    group by all
)

select * from final;
