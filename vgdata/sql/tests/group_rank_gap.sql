-- returns: a row when group ranks are not exactly 0..k-1 (must be none)
-- needs: groups
with

ranks as (select distinct group_rank from kept_classes),

final as (
    select count(*) as n_ranks, min(group_rank) as min_rank, max(group_rank) as max_rank
    from ranks
    having count(*) > 0 and (min(group_rank) <> 0 or max(group_rank) <> count(*) - 1)
)

select * from final
