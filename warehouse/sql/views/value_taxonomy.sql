-- view: value_taxonomy
-- One row per leaf value of the run's taxonomy.
SELECT value_id, value, description, cluster_l1, category, category_description, top_category, source
FROM {{taxonomy}}
