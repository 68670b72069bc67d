-- grain: one row per image and role: every database image, then every query image
--
-- eval_set(database_table, queries_table, threshold := 25.0)
--   The table that vgdata.evalset writes to manifests/eval_<name>.parquet (layout in its docstring).
--   database_table, queries_table: relation names as in positives() (core/positives.sql).
--   role: 'database' | 'query'. idx: 0-based position within the role, ordered by path, image_id.
--   positives: sorted database idx within `threshold` metres of the query (see positives());
--   an empty list for a query without any; null on database rows.
create or replace macro eval_set(database_table, queries_table, threshold := 25.0) as table
with

database_images as (
    select * from query_table(database_table)
),

query_images as (
    select * from query_table(queries_table)
),

pairs as (
    select * from positives(database_table, queries_table, threshold := threshold)
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

---------- positives as database idx lists
query_positives as (
    select
        pairs.query_image_id as image_id,
        list(database_rows.idx order by database_rows.idx) as positives
    from pairs
    inner join database_rows on database_rows.image_id = pairs.database_image_id
    group by pairs.query_image_id
),

final as (
    select
        database_rows.*,
        null::integer[] as positives
    from database_rows
    union all
    select
        query_rows.*,
        coalesce(query_positives.positives, []::integer[]) as positives
    from query_rows
    left join query_positives on query_positives.image_id = query_rows.image_id
)

-- 'database' sorts before 'query': database rows first, each role in idx order
select * from final order by role, idx;
