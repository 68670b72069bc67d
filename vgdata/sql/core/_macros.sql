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
