-- grain: one row per (query image, database image) pair closer than `threshold` metres
--
-- positives(database_table, queries_table, threshold := 25.0)
--   database_table, queries_table: names of relations (tables or views) with the images columns
--   image_id, utm_east, utm_north, utm_epsg; read with query_table(), e.g.
--   `create temp view q as select * from images where collection = 'queries_v1'`, then
--   `from positives('db', 'q')`.
--   threshold: radius in metres, inclusive (CosPlace's 25 m, REFERENCE.md section c).
--
-- A database image is a positive of a query when both lie in one UTM coordinate system and
-- (de - qe)^2 + (dn - qn)^2 <= threshold^2 (Euclidean metres, squared: no sqrt in the test).
-- Coordinate system = utm_epsg (326zz north, 327zz south; the utm_epsg macro in _macros.sql), since
-- the same zone north and south of the equator are two systems with different false northings.
-- A null utm_epsg (names without a zone, e.g. Nordland's dummy coordinates) is one system of its
-- own: systems are compared with `is not distinct from`. Rows without finite utm_east/utm_north
-- have no positives.
--
-- Grid-bucket join, never a cross product: database images fall in square cells of side
-- `threshold`, (floor(e / t), floor(n / t)). A query looks in every cell its box
-- [e - t, e + t] x [n - t, n + t] touches, i.e. its own cell and the 8 around it. The box ends are
-- computed with the same floor(x / t) as the database cells, and rounding is monotonic, so a pair
-- at exactly `threshold` is never lost to a cell edge. Each database image sits in one cell and a
-- query's cells are distinct, so every pair appears once. The database side is first cut down to
-- the cells some query looks at with a semi join on the distinct cell keys, which halves the time
-- at SF-XL test size (2.8M database images, 1000 queries) against joining all rows directly.
create or replace macro positives(database_table, queries_table, threshold := 25.0) as table
with

database_images as (
    select image_id, utm_east, utm_north, utm_epsg
    from query_table(database_table)
),

query_images as (
    select image_id, utm_east, utm_north, utm_epsg
    from query_table(queries_table)
),

---------- one cell per database image
database_cells as (
    select
        image_id,
        utm_east,
        utm_north,
        utm_epsg,
        floor(utm_east / threshold)::bigint as cell_e,
        floor(utm_north / threshold)::bigint as cell_n
    from database_images
    where isfinite(utm_east) and isfinite(utm_north)
),

---------- the 3 x 3 cells around each query
query_boxes as (
    select
        image_id,
        utm_east,
        utm_north,
        utm_epsg,
        floor((utm_east - threshold) / threshold)::bigint as cell_e_lo,
        floor((utm_east + threshold) / threshold)::bigint as cell_e_hi,
        floor((utm_north - threshold) / threshold)::bigint as cell_n_lo,
        floor((utm_north + threshold) / threshold)::bigint as cell_n_hi
    from query_images
    where isfinite(utm_east) and isfinite(utm_north)
),

query_columns as (
    select
        image_id,
        utm_east,
        utm_north,
        utm_epsg,
        cell_n_lo,
        cell_n_hi,
        unnest(range(cell_e_lo, cell_e_hi + 1)) as cell_e
    from query_boxes
),

query_cells as (
    select
        image_id,
        utm_east,
        utm_north,
        utm_epsg,
        cell_e,
        unnest(range(cell_n_lo, cell_n_hi + 1)) as cell_n
    from query_columns
),

---------- database images in a cell some query looks at (a semi join: cheap on millions of rows)
query_cell_keys as (
    select distinct utm_epsg, cell_e, cell_n
    from query_cells
),

database_near as (
    select database_cells.*
    from database_cells
    semi join query_cell_keys
        on
            query_cell_keys.utm_epsg is not distinct from database_cells.utm_epsg
            and query_cell_keys.cell_e = database_cells.cell_e
            and query_cell_keys.cell_n = database_cells.cell_n
),

---------- equi-join on (system, cell), then the exact distance test
candidate_pairs as (
    select
        q.image_id as query_image_id,
        d.image_id as database_image_id,
        (d.utm_east - q.utm_east) * (d.utm_east - q.utm_east)
        + (d.utm_north - q.utm_north) * (d.utm_north - q.utm_north) as squared_distance
    from query_cells as q
    inner join database_near as d
        on
            d.utm_epsg is not distinct from q.utm_epsg
            and d.cell_e = q.cell_e
            and d.cell_n = q.cell_n
),

final as (
    select
        query_image_id,
        database_image_id,
        sqrt(squared_distance) as distance_m
    from candidate_pairs
    where squared_distance <= threshold * threshold
)

select * from final;
