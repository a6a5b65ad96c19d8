-- model: position_grid
-- Every panel model's position on each value of each scenario, packed: one row per scenario and
-- "lane", where a lane holds 15 panel models (model i, in name order, is lane i // 15, nibble
-- i % 15: panel_models in sql/macros.sql) and each model has 4 bits per value: its position + 1,
-- or 0 when it has no ok placement.
-- disagreement, outliers and value_priorities all read this grid, so the millions of placements
-- are grouped by scenario once per run instead of once per analysis; `warehouse/sql/macros.sql`
-- has the bit arithmetic they use on it.
-- Inputs: classifications, subsets (the 'all' subset is the panel). Placements of models outside
-- the panel are not in the grid.
-- Checked: value_slot is 1 or 2, positions are 0..6, and there is one row per scenario x model x
-- value (a second one would be OR-ed into the same nibble, so the counts would differ).
WITH panel AS (
    SELECT * FROM panel_models('subsets')
),
ok AS NOT MATERIALIZED (    -- inlined into both halves of per_lane
    SELECT c.scenario_id, c.pair_id, p.lane, p.j,
           CASE WHEN c.value_slot IN (1, 2) THEN c.value_slot
                ELSE error('position_grid: value_slot ' || c.value_slot || ' is not 1 or 2') END AS value_slot,
           CASE WHEN c.position BETWEEN 0 AND 6 THEN c.position
                ELSE error('position_grid: position ' || c.position || ' is outside 0..6') END AS position
    FROM {{ ref('classifications') }} c JOIN panel p USING (model_id)
    WHERE c.status = 'ok' AND c.position IS NOT NULL
),
per_lane AS (
    -- lane 0 (the first 15 models) is grouped by scenario alone: a cheaper key than (scenario, lane)
    SELECT scenario_id, 0 AS lane, any_value(pair_id) AS pair_id,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 1), 0) AS positions1,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 2), 0) AS positions2,
           count(*) AS placements
    FROM ok WHERE lane = 0
    GROUP BY scenario_id
    UNION ALL
    -- lanes 1, 2, ... exist only with more than 15 panel models (otherwise this half ends at once)
    SELECT scenario_id, lane, any_value(pair_id) AS pair_id,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 1), 0) AS positions1,
           coalesce(bit_or((position + 1)::BIGINT << (4 * j)) FILTER (WHERE value_slot = 2), 0) AS positions2,
           count(*) AS placements
    FROM ok WHERE lane > 0
    GROUP BY scenario_id, lane
)
SELECT scenario_id, pair_id, lane::INTEGER AS lane, positions1, positions2
FROM per_lane
WHERE CASE WHEN placements <> placed(positions1) + placed(positions2)
           THEN error('position_grid: classifications must have one row per scenario x model x value_slot')
           ELSE true END
