-- returns: (query, positive) pairs of an eval set in two coordinate systems (another `utm_epsg`; a
-- null utm_epsg, images without a zone, is one system of its own, as positives() has it); must be none
-- needs: eval_set
with

pairs as (
    select idx as query_idx, image_id as query_image_id, utm_epsg, unnest(positives) as positive_idx
    from eval_rows
    where role = 'query'
),

final as (
    select
        p.query_idx,
        p.query_image_id,
        p.utm_epsg as query_utm_epsg,
        d.image_id as database_image_id,
        d.utm_epsg as database_utm_epsg
    from pairs as p
    inner join (select * from eval_rows where role = 'database') as d on d.idx = p.positive_idx
    where d.utm_epsg is distinct from p.utm_epsg
)

select * from final
