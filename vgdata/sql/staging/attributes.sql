-- grain: one row per image imported by a native dataset source (see vgdata/schema.py ATTRIBUTES)
-- The shared columns (dataset, split, city, sequence_id, frame, place_id, night, is_pano, view_direction,
-- coords_synthetic, source_east, source_north, source_name) and each dataset's own, prefixed with its name.
-- Join on image_id: `from images join attributes using (image_id, collection)`.
create or replace view attributes as
select * from read_parquet('attributes/*.parquet', union_by_name = true)
