-- returns: images whose UTM zone and letter are not a valid pair: a zone that is not an integer
-- in 1..60, a letter that is not one of C..X without I and O (upper case), one of the two null
-- without the other, or, where lat is present, a letter that is not lat's 8-degree band (within
-- 1e-5 degrees of a band edge either neighbour counts, as vgdata.geo.band_letter_mismatch has it).
-- Both null is allowed (names without a zone, e.g. Nordland). Must be none.
-- needs: images
with

source as (
    select image_id, path, lat, utm_zone, utm_letter
    from images
    where utm_zone is not null or utm_letter is not null
),

-- the bands of lat - 1e-5, lat and lat + 1e-5: letter index floor((lat + 80) / 8), clamped to
-- the 21 bands (X is listed twice: band X spans 72..84 N)
bands as (
    select
        *,
        substr('CDEFGHJKLMNPQRSTUVWXX', least(greatest(floor((lat - 1e-5 + 80) / 8), 0), 20)::integer + 1, 1)
            as band_below,
        substr('CDEFGHJKLMNPQRSTUVWXX', least(greatest(floor((lat + 80) / 8), 0), 20)::integer + 1, 1) as band,
        substr('CDEFGHJKLMNPQRSTUVWXX', least(greatest(floor((lat + 1e-5 + 80) / 8), 0), 20)::integer + 1, 1)
            as band_above
    from source
),

checked as (
    select
        image_id,
        path,
        lat,
        utm_zone,
        utm_letter,
        case
            when utm_zone is null then 'letter without a zone'
            when utm_letter is null then 'zone without a letter'
            when not (utm_zone between 1 and 60 and utm_zone = floor(utm_zone)) then 'zone not an integer in 1..60'
            when utm_letter not in (
                'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X'
            ) then 'letter not one of C..X without I and O'
            when isfinite(lat) and utm_letter not in (band_below, band, band_above) then 'letter not the band of lat'
        end as problem
    from bands
),

final as (select * from checked where problem is not null)

select * from final
