-- returns: images whose heading is not in [0, 360) degrees (NaN and infinities included); a null
-- heading (unknown, e.g. Flickr-style queries) is allowed. Must be none.
-- needs: images
with

final as (
    select image_id, path, heading
    from images
    where heading is not null and not (heading >= 0 and heading < 360)
)

select * from final
