-- returns: (radius, query, positive) triples of an eval set's positives_<t>m columns farther apart than that
-- radius (Euclidean UTM metres, inclusive), or a positive idx with no database row; must be none
-- needs: eval_set
-- eval_threshold_positives: one row per query and radius (threshold, query_idx, query_image_id, positives).
with

pairs as (
    select t.threshold, t.query_idx, t.query_image_id, unnest(t.positives) as positive_idx
    from eval_threshold_positives as t
),

final as (
    select
        p.threshold,
        p.query_idx,
        p.query_image_id,
        p.positive_idx,
        d.image_id as database_image_id,
        sqrt((d.utm_east - q.utm_east) ^ 2 + (d.utm_north - q.utm_north) ^ 2) as distance_m
    from pairs as p
    inner join (select * from eval_rows where role = 'query') as q on q.idx = p.query_idx
    left join (select * from eval_rows where role = 'database') as d on d.idx = p.positive_idx
    where
        d.idx is null
        or not ((d.utm_east - q.utm_east) * (d.utm_east - q.utm_east)
        + (d.utm_north - q.utm_north) * (d.utm_north - q.utm_north) <= p.threshold * p.threshold)
)

select * from final
