-- view: value_priorities_freeform
-- Per model x category: how often the model's responses put that category first (free-form route),
-- its share, the panel's share, and lift = share / panel share (> 1: expressed distinctively).
WITH f AS (SELECT model_id, category FROM {{priority_freeform}} WHERE status = 'ok'),
per AS (SELECT model_id, category, count(*) AS n FROM f GROUP BY ALL),
tot AS (SELECT model_id, count(*) AS total FROM f GROUP BY model_id),
panel AS (SELECT category, count(*) * 1.0 / (SELECT count(*) FROM f) AS panel_share FROM f GROUP BY category)
SELECT p.model_id, p.category, p.n, p.n * 1.0 / t.total AS share, panel.panel_share,
       (p.n * 1.0 / t.total) / panel.panel_share AS lift,
       rank() OVER (PARTITION BY p.model_id ORDER BY (p.n * 1.0 / t.total) / panel.panel_share DESC, p.n DESC,
                    p.category) AS rank
FROM per p JOIN tot t USING (model_id) JOIN panel USING (category)
