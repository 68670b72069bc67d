-- returns: places manifest rows whose (city, place_id) in the catalog's attributes is missing or differs
-- from the row's own, whose class holds another place than the class's first row (by image_id), or
-- whose group_rank is not 0; must be none
-- needs: places
with

manifest_rows as (
    select
        m.group_rank,
        m.class_index,
        m.image_id,
        m.city,
        m.place_id,
        a.city as attr_city,
        a.place_id as attr_place
    from places_rows as m
    left join attributes as a using (image_id, collection)
),

class_places as (
    select class_index, arg_min(city, image_id) as city, arg_min(place_id, image_id) as place_id
    from manifest_rows
    group by class_index
),

final as (
    select r.group_rank, r.class_index, r.image_id, r.city, r.place_id, r.attr_city, r.attr_place
    from manifest_rows as r
    inner join class_places as c using (class_index)
    where
        r.group_rank <> 0
        or r.city is null
        or r.place_id is null
        or r.attr_city is distinct from r.city
        or r.attr_place is distinct from r.place_id
        or r.city is distinct from c.city
        or r.place_id is distinct from c.place_id
)

select * from final
