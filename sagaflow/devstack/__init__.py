"""The local stack: real Kafka, Postgres and Jaeger on 127.0.0.1, started by the project itself.

There is no Docker engine on the machines sagaflow is developed on, so `python -m
sagaflow.devstack` downloads (once, into ``$SAGAFLOW_CACHE``) and runs:

- Apache Kafka, single-node KRaft (broker 127.0.0.1:19092, controller 127.0.0.1:19093), jars
  gathered from Maven Central;
- Postgres 16 from the ``pgserver`` wheel's binaries (127.0.0.1:15432);
- Jaeger v2 built from source with ``go build`` (OTLP 4317/4318, query 16686).

Runtime data, pid files and logs live under ``<repo>/.stack/`` so that each clone has its own
stack; downloads and builds are shared through the cache. Ports are fixed, so only one clone's
stack can run at a time.
"""

from sagaflow.devstack.stack import Stack, StackError

__all__ = ["Stack", "StackError"]
