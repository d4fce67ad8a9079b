"""Package copies (symlinks in the repo) of schemas/avro/*.avsc, so an installed sagaflow finds
its Avro schemas. schemas/avro/ is the source of truth; a unit test keeps the two in step."""
