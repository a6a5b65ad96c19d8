-- Macros shared by the SQL models: bit arithmetic on position_grid's packed lanes, and the packed
-- counters of outliers and value_priorities.
--
-- A lane x is a BIGINT of 15 4-bit "nibbles", one per model (nibble j is bits 4j .. 4j + 3): the
-- model's position + 1 (1..7), or 0 for no placement. Bit 3 of a nibble is never set (7 = 0b0111),
-- so adding up to 8 to every nibble never carries into the next one: (x + c * R) & 8R keeps bit 3
-- of exactly the nibbles whose value is >= 8 - c, where R has a 1 in every nibble.
-- DuckDB has no hexadecimal integer literals, so the masks below are written in decimal; each
-- comment gives the hex. The top nibble (bits 60..63) is never used, which keeps lanes positive.

-- R = 0x0111111111111111: bit 0 of each of the 15 nibbles (so c * R has c in every nibble)
CREATE OR REPLACE TEMP MACRO nibble_bit0() AS 76861433640456465;
-- 2R = 0x0222222222222222: bit 1 of each nibble
CREATE OR REPLACE TEMP MACRO nibble_bit1() AS 153722867280912930;
-- 4R = 0x0444444444444444: bit 2 of each nibble
CREATE OR REPLACE TEMP MACRO nibble_bit2() AS 307445734561825860;
-- 8R = 0x0888888888888888: bit 3 of each nibble, the "carry" bit that only the counting trick sets
CREATE OR REPLACE TEMP MACRO nibble_bit3() AS 614891469123651720;

-- how many bits of x are set, as an INTEGER (bit_count gives a TINYINT, whose sums overflow)
CREATE OR REPLACE TEMP MACRO ones(x) AS bit_count(x)::INTEGER;

-- the panel in the grid's order: the models of the 'all' subset of table `subsets` (a name), by
-- name; model i is nibble j = i % 15 of lane i // 15. Every model that reads position_grid uses this.
CREATE OR REPLACE TEMP MACRO panel_models(subsets) AS TABLE
    SELECT model_id::VARCHAR AS model_id, i, i // 15 AS lane, i % 15 AS j
    FROM (SELECT model_id, (row_number() OVER (ORDER BY model_id) - 1)::INTEGER AS i
          FROM (SELECT DISTINCT model_id FROM query_table(subsets) WHERE subset = 'all'));

-- the nibble of model j (0..14) in lane x: position + 1, or 0 (15 = 0b1111 keeps one nibble)
CREATE OR REPLACE TEMP MACRO nibble(x, j) AS (x >> (4 * j)) & 15;

-- how many models of lane x have a nibble >= v (v = 1..8): adding 8 - v to every nibble sets its
-- bit 3 exactly when the nibble was >= v. placed(x) = at_least(x, 1): how many models placed.
CREATE OR REPLACE TEMP MACRO at_least(x, v) AS ones((x + (8 - v) * nibble_bit0()) & nibble_bit3());
CREATE OR REPLACE TEMP MACRO placed(x) AS at_least(x, 1);

-- the sum of lane x's nibbles, from its bit planes: v = b0 + 2 b1 + 4 b2
CREATE OR REPLACE TEMP MACRO nibble_sum(x) AS
    ones(x & nibble_bit0()) + 2 * ones(x & nibble_bit1()) + 4 * ones(x & nibble_bit2());

-- the sum of the squares of lane x's nibbles: v^2 = b0 + 4 b1 + 16 b2 + 4 b0 b1 + 8 b0 b2 + 16 b1 b2
-- (bits are 0 or 1, so b^2 = b); a product b_k b_l is bit 0 of (x >> k) & (x >> l).
CREATE OR REPLACE TEMP MACRO nibble_square_sum(x) AS
    ones(x & nibble_bit0()) + 4 * ones(x & nibble_bit1()) + 16 * ones(x & nibble_bit2())
    + 4 * ones(x & (x >> 1) & nibble_bit0())
    + 8 * ones(x & (x >> 2) & nibble_bit0())
    + 16 * ones((x >> 1) & (x >> 2) & nibble_bit0());

-- the same sums over positions (= nibble - 1) of the models placed in lane x
CREATE OR REPLACE TEMP MACRO position_sum(x) AS nibble_sum(x) - placed(x);
CREATE OR REPLACE TEMP MACRO position_square_sum(x) AS nibble_square_sum(x) - 2 * nibble_sum(x) + placed(x);

-- Packed counters (outliers): seven counts of models, one per position 0..6 (or per nibble value
-- 1..7), side by side in one BIGINT, 9 bits each: counter k is bits 9k .. 9k + 8. Seven 9-bit
-- counters use 63 bits, so the BIGINT stays positive; packed counters add up lane by lane as long
-- as no count exceeds counter_max() (the outliers model checks it).
CREATE OR REPLACE TEMP MACRO counter_bits() AS 9;
-- 511 = 0x1FF = 2^9 - 1: the largest count a 9-bit counter holds, and the mask that keeps one
CREATE OR REPLACE TEMP MACRO counter_max() AS 511;
-- counter k (0..6) of packed counters c
CREATE OR REPLACE TEMP MACRO counter_at(c, k) AS (c >> (counter_bits() * (k))) & counter_max();
-- count n placed as counter k (add such terms up to pack several counters)
CREATE OR REPLACE TEMP MACRO as_counter(n, k) AS (n)::BIGINT << (counter_bits() * (k));
