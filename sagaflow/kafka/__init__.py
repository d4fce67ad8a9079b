"""Everything sagaflow says to Kafka: clients, topic admin, dead letters, error triage."""
