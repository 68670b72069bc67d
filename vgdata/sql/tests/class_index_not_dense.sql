-- returns: groups whose class indices are not exactly 0..classes-1 (must be none)
with

classes as (select distinct group_rank, class_index, class_e, class_n, class_h, zone, northern from cosplace_groups()),

final as (
    select group_rank, count(*) as classes, count(distinct class_index) as indices, max(class_index) as max_index
    from classes
    group by group_rank
    having count(distinct class_index) <> count(*) or max(class_index) <> count(*) - 1 or min(class_index) <> 0
)

select * from final
