-- returns: groups whose class indices are not exactly 0..classes-1 (must be none)
-- needs: groups
with

final as (
    select
        group_rank,
        count(*) as classes,
        count(distinct class_index) as indices,
        min(class_index) as min_index,
        max(class_index) as max_index
    from kept_classes
    group by group_rank
    having count(distinct class_index) <> count(*) or max(class_index) <> count(*) - 1 or min(class_index) <> 0
)

select * from final
