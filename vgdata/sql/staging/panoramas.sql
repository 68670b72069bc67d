-- grain: one row per source panorama (see vgdata/schema.py for the columns and their units)
create or replace view panoramas as
select * from read_parquet('panoramas/*.parquet', union_by_name = true)
