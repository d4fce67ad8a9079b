-- The updates a workflow's current run accepted, with their outcome once completed: the read
-- model's projection of UpdateAccepted / UpdateCompleted (sagaflow.readmodel.fold).
ALTER TABLE sagaflow_workflows
    ADD COLUMN updates jsonb NOT NULL DEFAULT '[]'::jsonb;
