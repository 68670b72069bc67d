-- returns: (query, positive) pairs of an eval set farther apart than $threshold metres
-- (Euclidean UTM metres, inclusive threshold), or a positive idx with no database row; must be none
-- needs: eval_set
-- eval_rows: the eval manifest's rows (vgdata/evalset.py's layout) plus `northern` (the image's
-- hemisphere, utm_letter >= 'N', as positives() has it).
with

pairs as (
    select idx as query_idx, image_id as query_image_id, utm_east, utm_north, unnest(positives) as positive_idx
    from eval_rows
    where role = 'query'
),

final as (
    select
        p.query_idx,
        p.query_image_id,
        p.positive_idx,
        d.image_id as database_image_id,
        sqrt((d.utm_east - p.utm_east) ^ 2 + (d.utm_north - p.utm_north) ^ 2) as distance_m
    from pairs as p
    left join (select * from eval_rows where role = 'database') as d on d.idx = p.positive_idx
    where
        d.idx is null
        or not ((d.utm_east - p.utm_east) * (d.utm_east - p.utm_east)
        + (d.utm_north - p.utm_north) * (d.utm_north - p.utm_north) <= $threshold * $threshold)
)

select * from final
