-- view: artefacts
-- The lineage table: every committed artefact, its inputs, config hash and code version.
SELECT artefact_id, stage, stage_version, input_ids, config_hash, code_version, row_count, part_count,
       created_at, run_id, template_hashes, config_json, summary_json
FROM {{lineage}}
