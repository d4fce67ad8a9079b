-- One row per logical activity step (workflow_id, activity_seq), never per attempt: the row is
-- how an activity that completed is never run again, whatever Kafka redelivers.
-- See services/activity_workers/sagaflow_worker/idempotency.py for the claim protocol.
CREATE TABLE sagaflow_activity_idempotency (
    idempotency_key  text        PRIMARY KEY,  -- '{workflow_id}/{activity_seq}'
    workflow_id      text        NOT NULL,
    activity_seq     integer     NOT NULL,
    activity_name    text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    -- Raised on every take-over; writes carry the token they claimed with, so a stale
    -- worker's late write matches no row.
    fencing_token    bigint      NOT NULL CHECK (fencing_token > 0),
    -- Database time, so workers' clocks never matter. NULL once the step is finished.
    lease_expires_at timestamptz,
    owner            text        NOT NULL,
    attempt          integer     NOT NULL,
    -- The outcome, kept so a redelivered task republishes it without running again. Bytes,
    -- not jsonb, so what is republished is exactly what was first published.
    result           bytea,
    error_type       text,
    error_message    text,
    error_details    bytea,
    retryable        boolean,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    CHECK (state <> 'completed' OR result IS NOT NULL),
    CHECK (state <> 'failed' OR (error_type IS NOT NULL AND retryable IS NOT NULL)),
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);

CREATE INDEX sagaflow_activity_idempotency_workflow
    ON sagaflow_activity_idempotency (workflow_id, activity_seq);
