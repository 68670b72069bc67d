-- returns: kept classes whose group is not (class_e mod N, class_n mod N, class_h mod L), floor-mod
-- (REFERENCE.md b.1), or whose group has two ranks; must be none
-- needs: groups
with

ranks as (
    select group_e, group_n, group_h, count(distinct group_rank) as n_ranks
    from kept_classes
    group by all
),

final as (
    select k.zone, k.northern, k.class_e, k.class_n, k.class_h, k.group_e, k.group_n, k.group_h, r.n_ranks
    from kept_classes as k
    inner join ranks as r using (group_e, group_n, group_h)
    where
        k.group_e <> floor_mod(k.class_e, $n)
        or k.group_n <> floor_mod(k.class_n, $n)
        or k.group_h <> floor_mod(k.class_h, $l)
        or r.n_ranks > 1
)

select * from final
