-- returns: classes that appear in more than one group (must be none)
with

groups as (select * from cosplace_groups()),

final as (
    select zone, northern, class_e, class_n, class_h, count(distinct (group_e, group_n, group_h)) as n_groups
    from groups
    group by all
    having count(distinct (group_e, group_n, group_h)) > 1
)

select * from final
