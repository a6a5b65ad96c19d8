-- view: value_strengths
-- Bradley–Terry strengths of the level-2 categories per model, from the duels (a scenario placed on both
-- values: the higher-placed value's category wins), with Poisson-bootstrap percentile intervals.
SELECT model_id, category, strength, ci_low, ci_high, rank, rank_low, rank_high, duels, resamples, confidence
FROM {{value_strengths}}
