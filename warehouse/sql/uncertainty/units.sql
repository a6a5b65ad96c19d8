-- uncertainty: units
-- The resampling units, numbered u = 0, 1, ... in blocks of equal level-2 categories (c1, c2: the
-- categories of the scenario's value pair, numbered by name as in value_priorities; -1 when unknown).
-- unit = 'scenario': every scenario is a unit; unit = 'pair': the scenarios of one value pair are drawn
-- together (a cluster bootstrap). A scenario without a known pair is its own unit.
-- Relations: position_grid, disagreement, refusals, outliers, compliance_raw, pairs. Parameter: {{unit}}.
CREATE OR REPLACE TEMP TABLE unit_of AS
WITH ids AS (
    SELECT scenario_id, any_value(pair_id) AS pair_id
    FROM (SELECT scenario_id, pair_id FROM position_grid
          UNION ALL SELECT DISTINCT scenario_id, pair_id FROM disagreement
          UNION ALL SELECT DISTINCT scenario_id, NULL FROM refusals
          UNION ALL SELECT DISTINCT scenario_id, NULL FROM outliers
          UNION ALL SELECT DISTINCT scenario_id, NULL FROM compliance_raw)
    GROUP BY scenario_id
),
keyed AS (
    SELECT i.scenario_id,
           CASE WHEN '{{unit}}' = 'pair' THEN coalesce('p:' || i.pair_id, 's:' || i.scenario_id)
                ELSE i.scenario_id END AS unit_key,
           coalesce(c1.c, -1) AS c1, coalesce(c2.c, -1) AS c2
    FROM ids i
    LEFT JOIN pairs p USING (pair_id)
    LEFT JOIN category_codes c1 ON c1.category = p.category1
    LEFT JOIN category_codes c2 ON c2.category = p.category2
)
SELECT scenario_id, (dense_rank() OVER (ORDER BY c1, c2, unit_key) - 1)::INTEGER AS u, c1, c2
FROM keyed
