-- returns: (radius, query, positive) triples of an eval set's positives_<t>m columns in two coordinate systems
-- (another `utm_epsg`; a null utm_epsg is one system of its own, as positives() has it); must be none
-- needs: eval_set
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
        q.utm_epsg as query_utm_epsg,
        d.image_id as database_image_id,
        d.utm_epsg as database_utm_epsg
    from pairs as p
    inner join (select * from eval_rows where role = 'query') as q on q.idx = p.query_idx
    inner join (select * from eval_rows where role = 'database') as d on d.idx = p.positive_idx
    where d.utm_epsg is distinct from q.utm_epsg
)

select * from final
