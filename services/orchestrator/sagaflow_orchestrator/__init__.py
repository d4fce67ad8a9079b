"""The orchestrator service: owns command partitions, decides with the core, appends events."""
