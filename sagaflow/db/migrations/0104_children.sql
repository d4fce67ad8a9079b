-- Child workflows (event schema v7). `parent` is {workflow_id, run_id, child_seq} for a
-- workflow started by another one (NULL otherwise); `pending_children` lists the children the
-- current run started that have not reported their close yet, oldest first:
-- [{workflow_id, type, seq, parent_close_policy, since_ms}].
ALTER TABLE sagaflow_workflows
    ADD COLUMN parent jsonb,
    ADD COLUMN pending_children jsonb NOT NULL DEFAULT '[]'::jsonb;
