-- returns: pairs of distinct classes of one group (and one coordinate system) fewer than $n cells
-- apart on both axes and fewer than $l heading bins apart, i.e. closer than M*(N-1) metres and
-- alpha*(L-1) degrees (CosPlace's separation, REFERENCE.md b.1); must be none
-- needs: groups
-- A bucket join, not a self-join of each group: classes fall in squares of $n x $n cells, and a
-- pair that close lies in the same or adjacent squares on both axes (headings compared after).
with

classes as (
    select
        group_rank,
        zone,
        northern,
        class_e,
        class_n,
        class_h,
        floor(class_e / $n)::bigint as bucket_e,
        floor(class_n / $n)::bigint as bucket_n
    from kept_classes
),

near_buckets as (
    select
        c.*,
        c.bucket_e + de.d as near_e,
        c.bucket_n + dn.d as near_n
    from classes as c
    cross join (values (-1), (0), (1)) as de (d)
    cross join (values (-1), (0), (1)) as dn (d)
),

final as (
    select
        a.group_rank,
        a.zone,
        a.northern,
        a.class_e,
        a.class_n,
        a.class_h,
        b.class_e as other_e,
        b.class_n as other_n,
        b.class_h as other_h
    from near_buckets as a
    inner join classes as b
        on
            a.group_rank = b.group_rank
            and a.zone = b.zone
            and a.northern = b.northern
            and a.near_e = b.bucket_e
            and a.near_n = b.bucket_n
    where
        (a.class_e, a.class_n, a.class_h) < (b.class_e, b.class_n, b.class_h)
        and abs(a.class_e - b.class_e) < $n
        and abs(a.class_n - b.class_n) < $n
        and abs(a.class_h - b.class_h) < $l
)

select * from final
