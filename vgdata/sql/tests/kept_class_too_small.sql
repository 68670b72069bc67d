-- returns: kept classes with fewer than $min_images_per_class images (must be none)
-- needs: groups
with

final as (
    select zone, northern, class_e, class_n, class_h, class_images
    from kept_classes
    where class_images < $min_images_per_class
)

select * from final
