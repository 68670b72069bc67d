-- returns: image_ids held by more than one row of images (must be none: image_id is the key)
-- needs: images
with

counted as (
    select image_id, count(*) as n, min(path) as first_path, max(path) as last_path
    from images
    group by image_id
),

final as (select * from counted where n > 1)

select * from final
