-- Signals each workflow's code waits for now, oldest first (from SignalWaitStarted events,
-- recorded since event schema v3): [{name, seq, since_ms, timer_seq, timeout_at_ms,
-- description}], where timeout_at_ms 0 means the wait has no timeout. A wait leaves the list
-- when its signal arrives, its timer fires, it is abandoned (cancel) or the run closes. Runs
-- recorded before v3 show no waits.
ALTER TABLE sagaflow_workflows
    ADD COLUMN signal_waits jsonb NOT NULL DEFAULT '[]'::jsonb;
