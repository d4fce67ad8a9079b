-- A state machine's path through its states, projected from StateTransitioned events:
-- {visited: [name...], active: [{state, scope}...], current: name|null, failed: name|null,
--  failed_scope: scope|null}. Null for workflows that record no states (code-first ones).
ALTER TABLE sagaflow_workflows ADD COLUMN state_path jsonb;
