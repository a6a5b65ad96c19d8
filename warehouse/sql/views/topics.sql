-- view: topics
-- One row per scenario x topic tag (multi-label); a scenario with no tag has one row with topic 'none'.
SELECT t.scenario_id, coalesce(tag.topic, 'none') AS topic, t.status, t.reasoning, t.call_key
FROM {{topics}} t
LEFT JOIN (SELECT scenario_id, unnest(topics) AS topic FROM {{topics}}) tag USING (scenario_id)
WHERE t.status = 'ok'
