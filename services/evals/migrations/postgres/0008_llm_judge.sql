-- LLM-as-a-judge: LLM connections (secrets sealed with EVALS_ENCRYPTION_KEY), versioned
-- evaluators, evaluation rules with their evaluator assignments, and durable judge jobs.

CREATE TABLE llm_connections (
    project_id text NOT NULL,
    id text NOT NULL,
    provider text NOT NULL,
    adapter text NOT NULL,
    -- AES-256-GCM (services/evals/secret_box.py); only the masked form is ever shown.
    secret_key bytea NOT NULL,
    display_secret_key text NOT NULL,
    base_url text,
    custom_models text[] NOT NULL,
    with_default_models boolean NOT NULL,
    -- A sealed JSON object; its keys are shown, its values never.
    extra_headers bytea,
    extra_header_keys text[] NOT NULL,
    config jsonb,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, provider)
);

CREATE TABLE evaluators (
    project_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    description text,
    status text NOT NULL,
    paused_at timestamptz,
    paused_reason text,
    paused_message text,
    latest_version integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE evaluator_versions (
    project_id text NOT NULL,
    evaluator_id text NOT NULL,
    version integer NOT NULL,
    id text NOT NULL,
    -- [{role, content}], the template's {{variables}}, [{variable, source, jsonPath}]
    prompt jsonb NOT NULL,
    variables text[] NOT NULL,
    variable_mapping jsonb,
    model_provider text,
    model text,
    output_definition jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, evaluator_id, version),
    FOREIGN KEY (project_id, evaluator_id) REFERENCES evaluators ON DELETE CASCADE
);

CREATE TABLE evaluation_rules (
    project_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    enabled boolean NOT NULL,
    sampling double precision NOT NULL,
    filter jsonb NOT NULL,
    -- 'observation' (the 5.x SDK's live observations) or 'trace' (Langfuse's v3 evaluators).
    target text NOT NULL,
    -- Debounce: a target is judged this long after its last matching event.
    delay_ms integer NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, id)
);

CREATE TABLE evaluation_rule_evaluators (
    project_id text NOT NULL,
    rule_id text NOT NULL,
    evaluator_id text NOT NULL,
    position integer NOT NULL,
    variable_mapping jsonb,
    PRIMARY KEY (project_id, rule_id, evaluator_id),
    FOREIGN KEY (project_id, rule_id) REFERENCES evaluation_rules ON DELETE CASCADE,
    FOREIGN KEY (project_id, evaluator_id) REFERENCES evaluators ON DELETE CASCADE
);
CREATE INDEX evaluation_rule_evaluators_by_evaluator
    ON evaluation_rule_evaluators (project_id, evaluator_id);

-- One job per (rule, evaluator, target): the unique key is what makes a target judged once per
-- rule however many batches its events arrive in. States: pending (due at run_after), running
-- (claimed until lease_until; an expired lease is claimed again), completed, error, skipped.
CREATE TABLE judge_jobs (
    project_id text NOT NULL,
    id uuid NOT NULL,
    rule_id text NOT NULL,
    evaluator_id text NOT NULL,
    trace_id text NOT NULL,
    -- '' for trace targets
    observation_id text NOT NULL,
    status text NOT NULL,
    run_after timestamptz NOT NULL,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    error text,
    evaluator_version integer,
    score_ids text[],
    judge_trace_id text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, id),
    UNIQUE (project_id, rule_id, evaluator_id, trace_id, observation_id)
);
CREATE INDEX judge_jobs_due ON judge_jobs (run_after) WHERE status = 'pending';
CREATE INDEX judge_jobs_leased ON judge_jobs (lease_until) WHERE status = 'running';
CREATE INDEX judge_jobs_listing ON judge_jobs (project_id, created_at DESC, id);
