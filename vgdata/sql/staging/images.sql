-- grain: one row per image (see vgdata/schema.py for the columns and their units)
create or replace view images as
select * from read_parquet('images/*.parquet', union_by_name = true)
