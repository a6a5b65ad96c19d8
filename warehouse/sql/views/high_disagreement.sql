-- view: high_disagreement
-- The high-disagreement set of each subset: scenarios with D >= the threshold that the
-- disagreement-weighted k-center kept; cluster_size = how many high scenarios each one stands for.
SELECT subset, scenario_id, d, cluster_size
FROM {{high_disagreement}}
WHERE kept
