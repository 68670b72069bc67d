-- grain: one row per image of the validation split's `role` ('database' or 'queries'); at most
-- one image per role and grid cell
--
-- val_split(role := 'queries', size := 1000, seed := 0, coll := 'database', threshold := 25.0,
--           grid_m := null, tries := 8)
--   A validation database and query set of `size` images each, spread over the whole area of
--   collection `coll` (SF-XL's val is 8k + 8k, REFERENCE.md f), drawn deterministically:
--   1. Panoramas (rows sharing a pano_id; a row without one is its own panorama) at their mean
--      position fall in square cells of side `grid_m` metres (null: val_grid's choice for `size`)
--      within their coordinate system (utm_epsg, as positives() has it; a null utm_epsg, no zone,
--      is one system).
--   2. Cells holding two or more panoramas are ranked by md5(seed, cell); the first `size` are
--      used. Each gives one query image and one database image, so both sets have
--      min(size, pair cells) images.
--   3. In a cell, the first `tries` panoramas by md5(seed, panorama) are query candidates. The
--      pair is (candidate, other panorama of the cell) ranked by: within `threshold` metres
--      first (inclusive, pano positions), then the candidate's rank, then md5(seed, panorama)
--      of the other one. So the query has a database image within `threshold` whenever one of
--      its cell's first `tries` panoramas has a neighbour panorama in the cell that close.
--   4. The query image is the query panorama's image with the smallest md5(seed, 'query',
--      image_id); the database image is the other panorama's image within `threshold` of it
--      with the smallest md5(seed, 'database', image_id) (any of its images when none is).
--   Query and database images always come from different panoramas: a panorama lies in one
--   cell and a cell gives one query panorama and a different database panorama. md5 of text
--   is the same on every machine and DuckDB version: the same rows and seed give the same
--   images. Rows without finite utm_east/utm_north are never drawn.
--   Columns: exactly those of `images`.
create or replace macro val_split(
    role := 'queries', size := 1000, seed := 0, coll := 'database', threshold := 25.0, grid_m := null, tries := 8
) as table
with

source as (
    select * from images as i
    where i.collection = coll and isfinite(i.utm_east) and isfinite(i.utm_north)
),

grid as (
    select coalesce(grid_m, (select g.side_m from val_grid(size := size, coll := coll) as g))::double as side
),

located as (
    select
        image_id,
        coalesce('p:' || pano_id, 'i:' || image_id::varchar) as pano_key,
        utm_east,
        utm_north
    from source
),

---------- one row per panorama: coordinate system, mean position, cell, hashes
panoramas as (
    select
        coalesce('p:' || pano_id, 'i:' || image_id::varchar) as pano_key,
        min(utm_epsg) as utm_epsg,
        avg(utm_east) as pano_east,
        avg(utm_north) as pano_north
    from source
    group by pano_key
),

pano_cells as (
    select
        p.*,
        floor(p.pano_east / grid.side)::bigint as cell_e,
        floor(p.pano_north / grid.side)::bigint as cell_n,
        md5(concat_ws(':', seed, 'query', p.pano_key)) as query_hash,
        md5(concat_ws(':', seed, 'database', p.pano_key)) as database_hash
    from panoramas as p
    cross join grid
),

---------- the first `size` cells with two or more panoramas
cells as (
    select
        utm_epsg,
        cell_e,
        cell_n,
        -- the hash spells the system out as (zone, southern), 0 and false for no zone: the text it
        -- had before utm_epsg existed, so a seed draws the same cells as it always did
        md5(concat_ws(
            ':',
            seed,
            'cell',
            coalesce(utm_epsg_zone(utm_epsg), 0),
            not coalesce(utm_epsg_northern(utm_epsg), true),
            cell_e,
            cell_n
        )) as cell_hash
    from pano_cells
    group by utm_epsg, cell_e, cell_n
    having count(*) >= 2
),

chosen_cells as (
    select
        *,
        row_number() over (order by cell_hash) as cell_rank
    from cells
    qualify cell_rank <= size
),

cell_panoramas as (
    select
        p.pano_key,
        p.pano_east,
        p.pano_north,
        p.database_hash,
        c.cell_rank,
        row_number() over (partition by c.cell_rank order by p.query_hash) as query_rank
    from pano_cells as p
    inner join chosen_cells as c
        on c.utm_epsg is not distinct from p.utm_epsg and c.cell_e = p.cell_e and c.cell_n = p.cell_n
),

---------- one (query panorama, database panorama) pair per cell
pairs as (
    select
        q.cell_rank,
        q.pano_key as query_pano,
        d.pano_key as database_pano,
        q.query_rank,
        d.database_hash,
        (d.pano_east - q.pano_east) * (d.pano_east - q.pano_east)
        + (d.pano_north - q.pano_north) * (d.pano_north - q.pano_north) <= threshold * threshold as is_close
    from cell_panoramas as q
    inner join cell_panoramas as d on d.cell_rank = q.cell_rank and d.pano_key <> q.pano_key
    where q.query_rank <= tries
),

chosen_pairs as (
    select * from pairs
    qualify row_number() over (
        partition by cell_rank order by is_close desc, query_rank, database_hash
    ) = 1
),

---------- one image of each panorama of a pair
query_images as (
    select
        p.cell_rank,
        l.image_id,
        l.utm_east,
        l.utm_north
    from chosen_pairs as p
    inner join located as l on l.pano_key = p.query_pano
    qualify row_number() over (
        partition by p.cell_rank order by md5(concat_ws(':', seed, 'query', l.image_id))
    ) = 1
),

database_images as (
    select
        p.cell_rank,
        l.image_id
    from chosen_pairs as p
    inner join query_images as q using (cell_rank)
    inner join located as l on l.pano_key = p.database_pano
    qualify row_number() over (
        partition by p.cell_rank
        order by
            (l.utm_east - q.utm_east) * (l.utm_east - q.utm_east)
            + (l.utm_north - q.utm_north) * (l.utm_north - q.utm_north) <= threshold * threshold desc,
            md5(concat_ws(':', seed, 'database', l.image_id))
    ) = 1
),

chosen_images as (
    select image_id, 'queries' as split_role from query_images
    union all
    select image_id, 'database' as split_role from database_images
),

final as (
    select s.*
    from source as s
    inner join chosen_images as c on c.image_id = s.image_id
    where c.split_role = role
)

select * from final;
