-- grain: scalar macros (no rows)
-- floor_div(x, d): the exact floor of x / d for doubles, like Python's x // d. DuckDB's
-- floor(x / d) rounds the quotient first, so a value one ulp below a multiple of d can land
-- in the next cell; the two corrections compare k * d with x, which is exact for the
-- integer k and the small d used here.
-- floor_mod(a, n): the non-negative remainder of integers (DuckDB's % keeps a's sign).
create or replace macro floor_div(x, d) as (
    floor(x / d)
    - case when floor(x / d) * d > x then 1 else 0 end
    + case when (floor(x / d) + 1) * d <= x then 1 else 0 end
)::bigint;

create or replace macro floor_mod(a, n) as (((a % n) + n) % n);

create or replace macro wrap_heading(h) as (
    -- degrees into [0, 360); a rounding to exactly 360 becomes 0
    case when h - 360 * floor(h / 360) >= 360 then 0.0 else h - 360 * floor(h / 360) end
);

-- The one key of a UTM coordinate system (vgdata/geo.py: utm_epsg, utm_epsg_zone):
-- utm_epsg(zone, letter): EPSG code (integer), 32600 + zone when the band letter is 'N' or later (northern,
--   as in `utm` and MGRS; case-insensitive), 32700 + zone for C..M (southern); null when the zone
--   is not an integer 1..60 or the letter is null or not one of C..X without I and O.
-- utm_epsg_zone(epsg), utm_epsg_northern(epsg): its inverse; null for a code that is not
--   32601..32660 or 32701..32760.
create or replace macro utm_epsg(zone, letter) as (
    case
        when zone between 1 and 60 and zone = floor(zone) and upper(letter) in (
            'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X'
        )
            then (case when upper(letter) >= 'N' then 32600 else 32700 end) + zone
    end
)::integer;

create or replace macro utm_epsg_zone(epsg) as (
    case when epsg between 32601 and 32660 or epsg between 32701 and 32760 then epsg % 100 end
)::smallint;

create or replace macro utm_epsg_northern(epsg) as (
    case when epsg between 32601 and 32660 or epsg between 32701 and 32760 then epsg < 32700 end
);
