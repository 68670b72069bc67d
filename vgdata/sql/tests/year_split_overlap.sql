-- returns: images of a year split's database taken in a year that its queries also cover, i.e.
-- year >= the queries' first year (the year views must be disjoint, database years before query
-- years); this includes any image in both views. Must be none.
-- needs: year_split
with

first_query_year as (
    select min(year) as year from split_queries
),

final as (
    select d.image_id, d.path, d.year, f.year as first_query_year
    from split_database as d
    cross join first_query_year as f
    where d.year >= f.year
)

select * from final
