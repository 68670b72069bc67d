-- returns: pairs of distinct classes of one group closer than M*(N-1) metres on both axes and
-- alpha*(L-1) degrees apart (with the defaults M=10, N=5, alpha=30, L=2); must be none
with

classes as (
    select distinct group_rank, zone, northern, class_e, class_n, class_h from cosplace_groups()
),

final as (
    select a.group_rank, a.class_e, a.class_n, a.class_h, b.class_e as other_e, b.class_n as other_n, b.class_h as other_h
    from classes as a
    inner join classes as b
        on a.group_rank = b.group_rank and a.zone = b.zone and a.northern = b.northern
        and (a.class_e, a.class_n, a.class_h) < (b.class_e, b.class_n, b.class_h)
    where abs(a.class_e - b.class_e) < 5 and abs(a.class_n - b.class_n) < 5 and abs(a.class_h - b.class_h) < 2
)

select * from final
