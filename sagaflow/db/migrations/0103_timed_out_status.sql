-- A workflow whose execution or run timeout passed (event schema v4) closes as 'timed_out'.
ALTER TABLE sagaflow_workflows DROP CONSTRAINT sagaflow_workflows_status_check;
ALTER TABLE sagaflow_workflows ADD CONSTRAINT sagaflow_workflows_status_check CHECK (status IN
    ('running', 'parked', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out',
     'continued_as_new'));
