-- grain: one row per image and role: every database image, then every query image
--
-- eval_set(database_table, queries_table, threshold := 25.0, thresholds := [])
--   The rows that vgdata.evalset writes to manifests/eval_<name>.parquet (layout in its docstring;
--   evalset.py turns `threshold_positives` into one `positives_<t>m` column per threshold).
--   database_table, queries_table: relation names as in positives() (core/positives.sql).
--   threshold: the primary radius in metres; thresholds: every radius (double[], the primary among
--   them or not; [] means the primary alone).
--   role: 'database' | 'query'. idx: 0-based position within the role, ordered by path, image_id.
--   positives: sorted database idx within `threshold` metres of the query (see positives());
--   an empty list for a query without any; null on database rows.
--   threshold_positives: one such list per element of `thresholds`, in its order; null on database rows.
--
-- One positives() join at the largest radius; each radius t then keeps the pairs with
-- (de - qe)^2 + (dn - qn)^2 <= t^2, the same squared test positives() makes, so the list of a
-- radius equals what positives(threshold := t) alone would give, and a smaller radius's list is a
-- subset of a larger one's.
create or replace macro eval_set(database_table, queries_table, threshold := 25.0, thresholds := []) as table
with

database_images as (
    select * from query_table(database_table)
),

query_images as (
    select * from query_table(queries_table)
),

radii as (
    select
        threshold::double as primary_radius,
        coalesce(thresholds, [])::double[] as all_radii
),

pairs as (
    select *
    from positives(
        database_table,
        queries_table,
        threshold := greatest(threshold::double, coalesce(list_max(coalesce(thresholds, [])::double[]), 0.0))
    )
),

---------- numbered images of each role
database_rows as (
    select
        'database' as role,
        (row_number() over (order by path, image_id) - 1)::integer as idx,
        image_id,
        collection,
        path,
        utm_east,
        utm_north,
        utm_zone,
        utm_epsg,
        heading,
        width,
        height_px
    from database_images
),

query_rows as (
    select
        'query' as role,
        (row_number() over (order by path, image_id) - 1)::integer as idx,
        image_id,
        collection,
        path,
        utm_east,
        utm_north,
        utm_zone,
        utm_epsg,
        heading,
        width,
        height_px
    from query_images
),

---------- each pair's squared distance, as positives() computes it
pair_distances as (
    select
        pairs.query_image_id,
        database_rows.idx as database_idx,
        (database_rows.utm_east - query_rows.utm_east) * (database_rows.utm_east - query_rows.utm_east)
        + (database_rows.utm_north - query_rows.utm_north)
        * (database_rows.utm_north - query_rows.utm_north) as squared_distance
    from pairs
    inner join database_rows on database_rows.image_id = pairs.database_image_id
    inner join query_rows on query_rows.image_id = pairs.query_image_id
),

---------- positives as database idx lists, per radius
query_candidates as (
    select
        query_image_id as image_id,
        list({'idx': database_idx, 'sq': squared_distance} order by database_idx) as candidates
    from pair_distances
    group by query_image_id
),

query_positives as (
    select
        query_candidates.image_id,
        list_transform(
            list_filter(query_candidates.candidates, lambda c: c.sq <= radii.primary_radius * radii.primary_radius),
            lambda c: c.idx
        ) as positives,
        list_transform(
            radii.all_radii,
            lambda t: list_transform(list_filter(query_candidates.candidates, lambda c: c.sq <= t * t), lambda c: c.idx)
        ) as threshold_positives
    from query_candidates
    cross join radii
),

final as (
    select
        database_rows.*,
        null::integer[] as positives,
        null::integer[][] as threshold_positives
    from database_rows
    union all
    select
        query_rows.*,
        coalesce(query_positives.positives, []::integer[]) as positives,
        coalesce(
            query_positives.threshold_positives, list_transform(radii.all_radii, lambda t: []::integer[])
        )::integer[][] as threshold_positives
    from query_rows
    cross join radii
    left join query_positives on query_positives.image_id = query_rows.image_id
)

-- 'database' sorts before 'query': database rows first, each role in idx order
select * from final order by role, idx;
