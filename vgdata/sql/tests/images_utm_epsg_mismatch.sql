-- returns: images whose utm_epsg is not utm_epsg(utm_zone, utm_letter) (the macro in
-- core/_macros.sql: 326zz north, 327zz south, null without a valid zone and letter), e.g. a stored
-- code of the other hemisphere, or a null code on a part written before the column existed
-- (rebuild the collection). Must be none.
-- needs: images
with

final as (
    select image_id, path, utm_zone, utm_letter, utm_epsg, utm_epsg(utm_zone, utm_letter) as expected_utm_epsg
    from images
    where utm_epsg is distinct from utm_epsg(utm_zone, utm_letter)
)

select * from final
