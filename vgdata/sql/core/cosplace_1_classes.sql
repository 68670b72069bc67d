-- grain: one row per image of collection `coll` that has a heading
-- CosPlace's classes (REFERENCE.md b.1): class = (floor(e / m), floor(n / m), floor(h / alpha))
-- with the UTM zone and hemisphere in the key. e, n in metres, h in degrees clockwise from
-- north wrapped into [0, 360) (CosPlace would make h = 360 a class of its own; we wrap it).
create or replace macro cosplace_classes(m := 10, alpha := 30, coll := 'database') as table
with

source as (
    select image_id, path, utm_zone, utm_letter, utm_east, utm_north, heading
    from images
    where collection = coll and heading is not null and utm_east is not null and utm_north is not null
),

classed as (
    select
        image_id,
        path,
        coalesce(utm_zone, 0) as zone,
        coalesce(utm_letter >= 'N', true) as northern,
        utm_east,
        utm_north,
        heading,
        floor_div(utm_east, m) as class_e,
        floor_div(utm_north, m) as class_n,
        floor_div(wrap_heading(heading), alpha) as class_h
    from source
),

final as (select * from classed)

select * from final;
