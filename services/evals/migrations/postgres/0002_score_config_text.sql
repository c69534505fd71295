-- TEXT configs (free-text scores of 1-500 characters), as in Langfuse.
ALTER TABLE score_configs DROP CONSTRAINT score_configs_data_type_check;
ALTER TABLE score_configs ADD CONSTRAINT score_configs_data_type_check
    CHECK (data_type IN ('NUMERIC', 'CATEGORICAL', 'BOOLEAN', 'TEXT'));
