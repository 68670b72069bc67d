-- returns: groups manifest rows whose class is not the cell of their own position and heading:
-- (floor(utm_east / $m), floor(utm_north / $m), floor(heading / $alpha)), exact floors as in
-- cosplace_classes() (heading is the wrapped one the manifest holds); must be none
-- needs: groups
with

final as (
    select image_id, path, utm_east, utm_north, heading, class_e, class_n, class_h
    from groups_manifest
    where
        class_e <> floor_div(utm_east, $m)
        or class_n <> floor_div(utm_north, $m)
        or class_h <> floor_div(heading, $alpha)
        or heading < 0
        or heading >= 360
)

select * from final
