-- grain: one row per rejected input (see vgdata/schema.py for the columns and their units)
create or replace view rejects as
select * from read_parquet('rejects/*.parquet', union_by_name = true)
