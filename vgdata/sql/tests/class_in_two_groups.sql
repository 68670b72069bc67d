-- returns: kept classes listed more than once, or in more than one group (must be none)
-- needs: groups
-- kept_classes: the rows of cosplace_kept_classes() behind the manifest, of the groups it ships.
with

final as (
    select
        zone,
        northern,
        class_e,
        class_n,
        class_h,
        count(*) as n_rows,
        count(distinct (group_e, group_n, group_h)) as n_groups
    from kept_classes
    group by zone, northern, class_e, class_n, class_h
    having count(*) > 1
)

select * from final
