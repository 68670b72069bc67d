-- grain: one row per image of collection `coll` captured in `year`
--
-- test_database(year := 2013, coll := 'database')
--   An SF-XL-style test database: the images of one capture year (SF-XL's test database is
--   the 2,805,815 crops of 2013, REFERENCE.md f). Images with a null year are never in it.
--   Columns: exactly those of `images`.
--   (`year` the parameter shadows `year` the column inside this macro, hence `i.year`.)
create or replace macro test_database(year := 2013, coll := 'database') as table
with

source as (
    select * from images as i
    where i.collection = coll
),

final as (
    select * from source as s
    where s.year = year
)

select * from final;
