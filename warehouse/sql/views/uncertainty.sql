-- view: uncertainty
-- Bootstrap confidence intervals on the run's headline numbers, one row per metric and group (see the
-- YAML beside this file for the metrics).
SELECT metric, subset, model_id, category, sample, estimate, ci_low, ci_high, n, resamples, confidence, unit
FROM {{uncertainty}}
