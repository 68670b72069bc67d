-- returns: images that appear more than once in cosplace_groups (must be none)
with

groups as (select * from cosplace_groups()),

final as (select image_id, count(*) as n from groups group by image_id having count(*) > 1)

select * from final
