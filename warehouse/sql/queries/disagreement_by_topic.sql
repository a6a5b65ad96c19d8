-- query: disagreement_by_topic
-- Mean disagreement of the whole panel and share of high-disagreement scenarios, per topic tag.
SELECT t.topic, count(*) AS scenarios, round(avg(d.d), 3) AS mean_d, round(100 * avg(d.high::INT), 1) AS high_pct
FROM topics t JOIN disagreement d ON d.scenario_id = t.scenario_id AND d.subset = 'all'
GROUP BY t.topic
ORDER BY mean_d DESC
