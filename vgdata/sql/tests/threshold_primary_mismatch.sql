-- returns: queries whose `positives` column differs from the positives_<t>m column of the primary radius
-- $threshold (or that lack a row for it in eval_threshold_positives); must be none
-- needs: eval_set
with

final as (
    select
        q.idx as query_idx,
        q.image_id as query_image_id,
        q.positives,
        t.positives as threshold_positives
    from (select * from eval_rows where role = 'query') as q
    left join (select * from eval_threshold_positives where threshold = $threshold) as t on t.query_idx = q.idx
    where t.query_idx is null or q.positives is distinct from t.positives
)

select * from final
