-- uncertainty: placements
-- The packed position grid per unit (see warehouse/sql/models/position_grid.sql for the packing:
-- panel model i, by name, is nibble i % 15 of lane i // 15; a nibble is position + 1, 0 = none).
SELECT uo.u, g.lane, g.positions1, g.positions2
FROM position_grid g JOIN unit_of uo USING (scenario_id)
