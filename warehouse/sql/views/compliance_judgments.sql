-- view: compliance_judgments
-- One row per sampled scenario x group model x judge: the judge's verdict on the response.
SELECT scenario_id, model_id, judge, verdict, reasoning, sections, status, samples, subset, d, bin, group_size,
       call_key
FROM {{compliance}}
