-- view: spectra
-- Seven ordered strategies per value and pair (0 extreme_oppose .. 6 extreme_favor).
SELECT pair_id, value_slot, value, position, label, strategy, status, attempts, call_key
FROM {{spectra}}
