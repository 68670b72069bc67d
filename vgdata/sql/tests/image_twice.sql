-- returns: images that appear more than once in the groups manifest (must be none)
-- needs: groups
with

final as (
    select image_id, count(*) as n
    from groups_manifest
    group by image_id
    having count(*) > 1
)

select * from final
