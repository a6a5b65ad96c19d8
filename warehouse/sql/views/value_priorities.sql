-- view: value_priorities
-- One row per model x level-2 category: how strongly the model favours that category's values.
SELECT model_id, category, top_category, n, mean_position, score, win_rate, duels, distinctiveness, rank
FROM {{value_priorities}}
