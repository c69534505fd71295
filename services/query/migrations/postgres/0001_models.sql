-- Project-defined models and prices for cost inference (built-in defaults ship with the code).
CREATE TABLE models (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    model_name text NOT NULL,
    match_pattern text NOT NULL,
    start_date timestamptz,
    unit text,
    tokenizer_id text,
    tokenizer_config jsonb,
    pricing_tiers jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, model_name, start_date)
);
