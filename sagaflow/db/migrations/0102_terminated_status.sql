-- A workflow stopped by TerminateWorkflow (event schema v4) closes as 'terminated'.
ALTER TABLE sagaflow_workflows DROP CONSTRAINT sagaflow_workflows_status_check;
ALTER TABLE sagaflow_workflows ADD CONSTRAINT sagaflow_workflows_status_check CHECK (status IN
    ('running', 'parked', 'completed', 'failed', 'cancelled', 'terminated', 'continued_as_new'));
