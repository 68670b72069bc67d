-- grain: one row: the grid that val_split uses for `size` pairs of collection `coll`
--
-- val_grid(size := 1000, coll := 'database')
--   val_split draws at most one (query, database) pair per square grid cell, from two different
--   panoramas of that cell, so the grid sets how the pairs spread: it should have about `size`
--   cells holding two or more panoramas ("pair cells"). The candidate sides are 1, 1.5, 2, 3, 5,
--   7 x 10^k metres for k = 0..6 (1 m to 7,000 km). The choice is the largest side with at least
--   `size` pair cells, so each cell is as large as the spread allows; when no side has `size` pair
--   cells, the side with the most pair cells (the largest of equals), and val_split returns fewer
--   pairs than asked.
--   A panorama is the rows sharing a pano_id (a row without pano_id is a panorama of its own);
--   its position is the mean of its images' UTM coordinates, and it falls in exactly one cell of
--   its coordinate system (utm_epsg; rows without a zone, a null utm_epsg, form one system, as in
--   positives()). Rows without finite utm_east/utm_north are not used.
--   Columns: side_m (the cell side, metres), cells (occupied cells), pair_cells, panoramas.
create or replace macro val_grid(size := 1000, coll := 'database') as table
with

source as (
    select * from images as i
    where i.collection = coll and isfinite(i.utm_east) and isfinite(i.utm_north)
),

---------- one row per panorama: its coordinate system and mean position
panoramas as (
    select
        coalesce('p:' || pano_id, 'i:' || image_id::varchar) as pano_key,
        min(utm_epsg) as utm_epsg,
        avg(utm_east) as pano_east,
        avg(utm_north) as pano_north
    from source
    group by pano_key
),

---------- the candidate cell sides
sides as (
    select mantissa * power(10, exponent) as side_m
    from (values (1.0), (1.5), (2.0), (3.0), (5.0), (7.0)) as m (mantissa)
    cross join range(0, 7) as e (exponent)
),

---------- panoramas per cell, for every side
cell_counts as (
    select
        sides.side_m,
        p.utm_epsg,
        floor(p.pano_east / sides.side_m)::bigint as cell_e,
        floor(p.pano_north / sides.side_m)::bigint as cell_n,
        count(*) as cell_panoramas
    from panoramas as p
    cross join sides
    group by all
),

side_counts as (
    select
        side_m,
        count(*) as cells,
        count(*) filter (where cell_panoramas >= 2) as pair_cells,
        sum(cell_panoramas)::bigint as panoramas
    from cell_counts
    group by side_m
),

final as (
    select * from side_counts
    order by
        pair_cells >= size desc,
        case when pair_cells >= size then side_m end desc,
        pair_cells desc,
        side_m desc
    limit 1
)

select * from final;
