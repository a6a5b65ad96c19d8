-- view: value_pairs
-- The sampled value pairs (uniform, unordered, no self-pairs), with both values' categories.
SELECT pair_id, value1, value2, value1_id, value2_id, category1, category2, top_category1, top_category2,
       value1_description, value2_description
FROM {{pairs}}
