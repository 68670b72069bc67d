-- returns: places of collection $coll kept or dropped wrongly: a place with >= $min_images images that
-- the manifest lacks, a class with fewer images or other images than its place has in the catalog, a
-- place in two classes, rows of another collection, or class indexes not counting 0..K-1 (one row,
-- city and place_id null); must be none
-- needs: places
with

catalog_places as (
    select a.city, a.place_id, count(*) as images
    from images as i
    inner join attributes as a using (image_id, collection)
    where i.collection = $coll and a.city is not null and a.place_id is not null
    group by all
),

manifest_places as (
    select
        city,
        place_id,
        count(distinct class_index) as classes,
        min(class_index) as class_index,
        count(*) as images,
        count(*) filter (where collection is distinct from $coll) as foreign_rows
    from places_rows
    group by all
),

class_range as (
    select count(distinct class_index) as classes, min(class_index) as lo, max(class_index) as hi
    from places_rows
),

mismatched as (
    select
        coalesce(m.city, c.city) as city,
        coalesce(m.place_id, c.place_id) as place_id,
        c.images as catalog_images,
        m.images as manifest_images,
        m.classes,
        m.class_index
    from manifest_places as m
    full outer join catalog_places as c using (city, place_id)
    where
        (m.images is null and c.images >= $min_images)
        or (m.images is not null and (m.images < $min_images or m.images is distinct from c.images))
        or m.classes > 1
        or m.foreign_rows > 0
),

not_dense as (
    select
        null::varchar as city,
        null::varchar as place_id,
        null::bigint as catalog_images,
        classes as manifest_images,
        null::bigint as classes,
        hi as class_index
    from class_range
    where classes > 0 and (lo <> 0 or hi <> classes - 1)
),

final as (
    select * from mismatched
    union all
    select * from not_dense
)

select * from final
