-- returns: kept classes with fewer than min_images_per_class (10) images (must be none)
with

groups as (select * from cosplace_groups()),

final as (
    select zone, northern, class_e, class_n, class_h, count(*) as images
    from groups
    group by all
    having count(*) < 10
)

select * from final
