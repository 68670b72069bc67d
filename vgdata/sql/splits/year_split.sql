-- grain: one row per image of collection `coll` that falls in `role` ('database' or 'queries')
--
-- year_split(role := 'queries', queries_from := 2011, database_before := null, coll := 'database')
--   The year splits of the CosPlace paper (REFERENCE.md f): a database and a query set drawn
--   from one collection by capture year, as contrastive methods need for training.
--   role 'queries':  year >= queries_from
--   role 'database': year <  coalesce(database_before, queries_from)
--   Both bounds are whole calendar years: "taken after 2010" is year >= 2011 and "taken before
--   2015" is year <= 2014 (an image of December 2010 is not "after 2010").
--     SF-XL*  = queries_from := 2011                          (queries 2011-, database -2010)
--     SF-XL** = queries_from := 2016, database_before := 2015 (queries 2016-, database -2014;
--               the images of 2015 are in neither set)
--   Images with a null year are in neither set. database_before must not exceed queries_from
--   (vgdata.splits checks it); if it did, the overlap would go to the queries.
--   Columns: exactly those of `images`.
create or replace macro year_split(
    role := 'queries', queries_from := 2011, database_before := null, coll := 'database'
) as table
with

source as (
    select * from images as i
    where i.collection = coll and i.year is not null
),

assigned as (
    select
        *,
        case
            when year >= queries_from then 'queries'
            when year < coalesce(database_before, queries_from) then 'database'
        end as split_role
    from source
),

final as (
    select * exclude (split_role) from assigned
    where split_role = role
)

select * from final;
