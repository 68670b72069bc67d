-- grain: one row per image of collection `coll` listed in the membership file of area split `area`
--
-- area_split(area := 'area', coll := 'database', fingerprint := 'none', outside := 0, area_sha256 := 'none')
--   The images inside (or, outside := 1, outside) the polygons of a vector file, as chosen by
--   `vgdata split-area` (vgdata/areas.py): a macro cannot hold a polygon, so split-area tests every
--   image against the area once and writes the chosen image_ids to `areas/<area>.parquet` (under the
--   catalog folder); this macro returns those images' rows of `images`.
--   Never silently stale: `fingerprint` is collection `coll`'s fingerprint (build.json) when the
--   membership was computed; when the collection has been built again since (its fingerprint in
--   build.json differs), reading the view fails with "area split ... is stale" instead of returning
--   the old membership. `outside` and `area_sha256` (the area file's sha256) record how the
--   membership was made; the macro does not use them.
--   Columns: exactly those of `images`.
create or replace macro area_split(
    area := 'area', coll := 'database', fingerprint := 'none', outside := 0, area_sha256 := 'none'
) as table
with

current_state as (
    select ((b.content::json -> 'collections' -> coll) ->> 'fingerprint') as current_fingerprint
    from read_text('build.json') as b
),

guard as (
    select
        case
            when c.current_fingerprint is distinct from fingerprint
                then error(
                    'area split ' || area || ' is stale: collection ' || coll
                    || ' changed since vgdata split-area chose its images; run vgdata split-area again for '
                    || area
                )
            else true
        end as ok
    from current_state as c
),

members as (
    select m.image_id from read_parquet('areas/' || area || '.parquet') as m
),

source as (
    select * from images as i
    where i.collection = coll
),

final as (
    select s.*
    from source as s
    cross join guard as g
    where g.ok and s.image_id in (select m.image_id from members as m)
)

select * from final;
