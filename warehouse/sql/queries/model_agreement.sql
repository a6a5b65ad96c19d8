-- query: model_agreement
-- Model x model agreement: for every ordered pair of panel models, the share of scenarios where the two
-- models' positions are within 1 of each other on both values (1.0 on the diagonal).
WITH p AS (
    SELECT scenario_id, model_id, value_slot, position
    FROM classifications
    WHERE status = 'ok' AND position IS NOT NULL
),
s AS (
    SELECT a.model_id AS model_a, b.model_id AS model_b, a.scenario_id,
           bool_and(abs(a.position - b.position) <= 1) AS close
    FROM p a JOIN p b ON a.scenario_id = b.scenario_id AND a.value_slot = b.value_slot
    GROUP BY ALL
)
SELECT model_a, model_b, round(avg(close::INT), 3) AS agreement, count(*) AS scenarios
FROM s
GROUP BY ALL
ORDER BY model_a, model_b
