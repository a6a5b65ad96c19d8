-- uncertainty: category_codes
-- The pairs' level-2 categories numbered by name (c = 0, 1, ...), as value_priorities numbers them.
CREATE OR REPLACE TEMP TABLE category_codes AS
SELECT category, (row_number() OVER (ORDER BY category) - 1)::INTEGER AS c
FROM (SELECT category1 AS category FROM pairs UNION SELECT category2 FROM pairs)
WHERE category IS NOT NULL
