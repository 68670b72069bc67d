-- returns: queries whose positives at a smaller radius are not all positives at a larger one (positives_<t1>m
-- must be a subset of positives_<t2>m for t1 < t2), with the idx missing from the larger list; must be none
-- needs: eval_set
with

final as (
    select
        small.query_idx,
        small.query_image_id,
        small.threshold as smaller_threshold,
        large.threshold as larger_threshold,
        list_filter(small.positives, lambda x: not list_contains(large.positives, x)) as missing_idx
    from eval_threshold_positives as small
    inner join eval_threshold_positives as large
        on
            large.query_idx = small.query_idx
            and large.threshold > small.threshold
    where not list_has_all(coalesce(large.positives, []), coalesce(small.positives, []))
)

select * from final
