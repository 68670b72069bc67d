-- grain: one row per place (city, place_id) of collection `coll` (vgdata split-places)
--
-- place_classes(coll := 'train_database', min_images := 4)
--   A dataset's own places as training classes (gsv-cities place_id; vgdata/places.py): a place is
--   (city, place_id) of the `attributes` table joined on (image_id, collection); images without a
--   city or place_id belong to no place. kept: the place has >= min_images images (gsv-cities'
--   min_img_per_place). class_index: 0-based over the kept places, ordered by city (byte order),
--   then place_id as a number where it is a whole number (gsv-cities' ids), then place_id as text.
create or replace macro place_classes(coll := 'train_database', min_images := 4) as table
with

placed as (
    select a.city, a.place_id
    from images as i
    inner join attributes as a using (image_id, collection)
    where i.collection = coll and a.city is not null and a.place_id is not null
),

counted as (
    select city, place_id, count(*)::bigint as images
    from placed
    group by all
),

final as (
    select
        city,
        place_id,
        images,
        images >= min_images as kept,
        case when images >= min_images then (row_number() over (
            partition by images >= min_images
            order by city, try_cast(place_id as hugeint) nulls last, place_id
        ) - 1)::integer end as class_index
    from counted
)

select * from final
order by class_index nulls last, city, place_id;

---------- the places manifest: the groups manifest's columns, one group, class = place
-- grain: one row per image of a kept place, ordered by class_index, image_id.
-- group_rank is 0 for every row (one group: vgtrain fit --groups-num 1); the CosPlace cell columns
-- (class_e, class_n, class_h, group_e, group_n, group_h) are null: a place is no cell. city,
-- place_id and class_images (the place's image count) follow.
create or replace macro places_manifest(coll := 'train_database', min_images := 4) as table
with

kept as (
    select * from place_classes(coll := coll, min_images := min_images)
    where kept
),

final as (
    select
        0::integer as group_rank,
        k.class_index,
        i.image_id,
        i.collection,
        i.path,
        i.utm_east,
        i.utm_north,
        i.utm_zone,
        i.utm_epsg,
        i.heading,
        null::bigint as class_e,
        null::bigint as class_n,
        null::bigint as class_h,
        null::bigint as group_e,
        null::bigint as group_n,
        null::bigint as group_h,
        a.city,
        a.place_id,
        k.images as class_images
    from images as i
    inner join attributes as a using (image_id, collection)
    inner join kept as k on a.city = k.city and a.place_id = k.place_id
    where i.collection = coll
)

select * from final
order by class_index, image_id;
