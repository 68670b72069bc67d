-- returns: panoramas with images in both the val database and the val queries (must be none: a
-- val query and its database come from different panoramas). A row without pano_id is a panorama
-- of its own, as in val_split().
-- needs: val_split
-- split_database, split_queries: the split's two views (or the rows drawn for them).
with

database_panoramas as (
    select coalesce('p:' || pano_id, 'i:' || image_id::varchar) as pano_key, count(*) as database_images
    from split_database
    group by pano_key
),

query_panoramas as (
    select coalesce('p:' || pano_id, 'i:' || image_id::varchar) as pano_key, count(*) as query_images
    from split_queries
    group by pano_key
),

final as (
    select pano_key, database_images, query_images
    from database_panoramas
    inner join query_panoramas using (pano_key)
)

select * from final
