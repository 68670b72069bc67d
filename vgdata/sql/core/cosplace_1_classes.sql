-- grain: one row per image of collection `coll` that has a heading
-- CosPlace's classes (REFERENCE.md b.1): class = (floor(e / m), floor(n / m), floor(h / alpha))
-- with the coordinate system in the key: utm_epsg (326zz north, 327zz south; images without a
-- zone have a null utm_epsg and form one system of their own: compare it with `is not distinct
-- from`). zone and northern spell utm_epsg out (utm_epsg_zone / utm_epsg_northern; 0 and true
-- for a null utm_epsg), for readers that order or join on them; they are equivalent to it.
-- e, n in metres, h in degrees clockwise from north wrapped into [0, 360) (CosPlace would make h = 360 a class of its own; we wrap it).
-- Floors are exact, like Python's //: DuckDB's floor(x / d) rounds the quotient first, so a
-- value one ulp below a multiple of d could land in the next cell; the corrections compare
-- k * d with x, exact for the integer k and the small d used here (see _macros.sql).
-- A subset of the collection (vgdata split-groups --panorama-fraction F --fraction-seed S --years Y,..):
-- fraction (0 < F <= 1) keeps whole panoramas: a unit is a panorama (pano_id; every crop of it
-- together) or, without pano_id, the image alone, keyed 'p:' || pano_id or 'i:' || image_id (as
-- val_split() has it). A unit is kept iff
--     u = int(md5(f"{seed}:{key}").hexdigest()[:13], 16) / 2**52  <  F
-- (the first 52 bits of the MD5 of the UTF-8 text, exact in a double), so for one seed the subset of
-- a smaller F lies inside that of a larger one, and F = 1 keeps all. years: a list of capture years
-- (images.year) to keep; null keeps every year (and images without one).
create or replace macro panorama_fraction_u(pano_id, image_id, seed) as (
    ('0x' || left(md5(seed::varchar || ':' || coalesce('p:' || pano_id, 'i:' || image_id::varchar)), 13))::bigint
    / 4503599627370496.0
);

create or replace macro cosplace_classes(
    m := 10, alpha := 30, coll := 'database', fraction := 1.0, seed := 0, years := null
) as table
with

source as (
    select image_id, path, utm_epsg, utm_east, utm_north, wrap_heading(heading) as heading
    from images
    where
        collection = coll and heading is not null and utm_east is not null and utm_north is not null
        and (fraction >= 1 or panorama_fraction_u(pano_id, image_id, seed) < fraction)
        and (years is null or list_contains(years, year))
),

quotients as (
    select
        *,
        floor(utm_east / m) as q_e,
        floor(utm_north / m) as q_n,
        floor(heading / alpha) as q_h
    from source
),

classed as (
    select
        image_id,
        path,
        utm_epsg,
        coalesce(utm_epsg_zone(utm_epsg), 0) as zone,
        coalesce(utm_epsg_northern(utm_epsg), true) as northern,
        utm_east,
        utm_north,
        heading,
        (q_e - (q_e * m > utm_east)::int + ((q_e + 1) * m <= utm_east)::int)::bigint as class_e,
        (q_n - (q_n * m > utm_north)::int + ((q_n + 1) * m <= utm_north)::int)::bigint as class_n,
        (q_h - (q_h * alpha > heading)::int + ((q_h + 1) * alpha <= heading)::int)::bigint as class_h
    from quotients
),

final as (select * from classed)

select * from final;
