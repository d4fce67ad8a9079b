-- The read model: what the HTTP API and the UI show, projected from the events topic by
-- sagaflow.readmodel. Everything here can be rebuilt by replaying the topic from its start;
-- the projector is idempotent on (workflow_id, seq), so a replay changes nothing.

-- One row per workflow id: the latest run's state, advanced only by events with a higher seq.
CREATE TABLE sagaflow_workflows (
    workflow_id       text        PRIMARY KEY,
    run_id            text        NOT NULL,
    type              text        NOT NULL,
    version           integer     NOT NULL,
    status            text        NOT NULL CHECK (status IN
                        ('running', 'parked', 'completed', 'failed', 'cancelled',
                         'continued_as_new')),
    input             jsonb,
    result            jsonb,
    error             jsonb,
    -- The last activity scheduled (name, seq, attempt, state), or null.
    current_step      jsonb,
    -- Activities scheduled and not yet finished, keyed by activity seq.
    pending_activities jsonb      NOT NULL DEFAULT '{}'::jsonb,
    -- Durable timers started and neither fired nor cancelled: [{timer_seq, fire_at_ms}].
    pending_timers    jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- Signals delivered to the workflow, in order: [{name, seq, command_id, recorded_at_ms}].
    received_signals  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    parked            jsonb,
    -- Event times (not projection times), so a replay writes the same values.
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    last_seq          bigint      NOT NULL
);
-- The list endpoint pages newest first by (created_at, workflow_id), optionally filtered.
CREATE INDEX sagaflow_workflows_created ON sagaflow_workflows (created_at DESC, workflow_id DESC);
CREATE INDEX sagaflow_workflows_status ON sagaflow_workflows
    (status, created_at DESC, workflow_id DESC);
CREATE INDEX sagaflow_workflows_type ON sagaflow_workflows
    (type, created_at DESC, workflow_id DESC);

-- Every event of every workflow, as recorded.
CREATE TABLE sagaflow_workflow_history (
    workflow_id     text        NOT NULL,
    seq             bigint      NOT NULL,
    run_id          text        NOT NULL,
    type            text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    body            jsonb       NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    PRIMARY KEY (workflow_id, seq)
);

-- Commands the engine refused (seq 0 events). A rejection's identity is what it says and when
-- the engine said it, so a re-delivered copy of the same event is a no-op.
CREATE TABLE sagaflow_rejections (
    id              bigserial   PRIMARY KEY,
    command_id      text        NOT NULL,
    workflow_id     text        NOT NULL,
    command_type    text        NOT NULL,
    reason          text        NOT NULL,
    message         text        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    UNIQUE (workflow_id, command_id, command_type, reason, recorded_at)
);
CREATE INDEX sagaflow_rejections_workflow ON sagaflow_rejections (workflow_id, recorded_at);

-- Starts accepted by the HTTP API, written before the command is produced. A repeated POST with
-- the same client-chosen id is compared against this row, so the answer (202 or 409) does not
-- depend on whether the projector has caught up yet.
CREATE TABLE sagaflow_start_requests (
    workflow_id     text        PRIMARY KEY,
    type            text        NOT NULL,
    version         integer,
    input           jsonb       NOT NULL,
    command_id      text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now()
);
