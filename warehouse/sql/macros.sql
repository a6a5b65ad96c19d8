-- Macros shared by the SQL models: bit arithmetic on position_grid's packed lanes.
-- A lane x is a BIGINT of 15 4-bit "nibbles", one per model: position + 1 (1..7), or 0 for no
-- placement. Bit 3 of a nibble is never set, so adding up to 8 to every nibble never carries into
-- the next one: (x + c * R) & 8R keeps bit 3 of exactly the nibbles with value >= 8 - c.
-- R = 0x0111111111111111 has a 1 in every nibble (so c * R has c in every nibble).

-- how many bits of x are set, as an INTEGER (bit_count gives a TINYINT, whose sums overflow)
CREATE OR REPLACE TEMP MACRO ones(x) AS bit_count(x)::INTEGER;

-- the panel in the grid's order: the models of the 'all' subset of table `subsets` (a name), by
-- name; model i is nibble j = i % 15 of lane i // 15. Every model that reads position_grid uses this.
CREATE OR REPLACE TEMP MACRO panel_models(subsets) AS TABLE
    SELECT model_id::VARCHAR AS model_id, i, i // 15 AS lane, i % 15 AS j
    FROM (SELECT model_id, (row_number() OVER (ORDER BY model_id) - 1)::INTEGER AS i
          FROM (SELECT DISTINCT model_id FROM query_table(subsets) WHERE subset = 'all'));

-- the nibble of model j (0..14) in lane x: position + 1, or 0
CREATE OR REPLACE TEMP MACRO nibble(x, j) AS (x >> (4 * j)) & 15;

-- how many models of lane x have a nibble >= v (v = 1..8); placed(x) = at_least(x, 1)
CREATE OR REPLACE TEMP MACRO at_least(x, v) AS ones((x + (8 - v) * 76861433640456465) & 614891469123651720);
CREATE OR REPLACE TEMP MACRO placed(x) AS ones((x + 538030035483195255) & 614891469123651720);

-- the sum of lane x's nibbles, from its bit planes: v = b0 + 2 b1 + 4 b2
CREATE OR REPLACE TEMP MACRO nibble_sum(x) AS
    ones(x & 76861433640456465) + 2 * ones(x & 153722867280912930)
    + 4 * ones(x & 307445734561825860);

-- the sum of the squares of lane x's nibbles: v^2 = b0 + 4 b1 + 16 b2 + 4 b0 b1 + 8 b0 b2 + 16 b1 b2
CREATE OR REPLACE TEMP MACRO nibble_square_sum(x) AS
    ones(x & 76861433640456465) + 4 * ones(x & 153722867280912930)
    + 16 * ones(x & 307445734561825860)
    + 4 * ones(x & (x >> 1) & 76861433640456465)
    + 8 * ones(x & (x >> 2) & 76861433640456465)
    + 16 * ones((x >> 1) & (x >> 2) & 76861433640456465);

-- the same sums over positions (= nibble - 1) of the models placed in lane x
CREATE OR REPLACE TEMP MACRO position_sum(x) AS nibble_sum(x) - placed(x);
CREATE OR REPLACE TEMP MACRO position_square_sum(x) AS nibble_square_sum(x) - 2 * nibble_sum(x) + placed(x);
