-- view: sensitivity
-- The headline conclusions under each matcher, side by side, with their overlap with roles.matcher's
-- (see tasks/sensitivity.py). Empty with one matcher.
SELECT matcher, primary_matcher, conclusion, model_id, value, number, overlap, n
FROM {{sensitivity}}
