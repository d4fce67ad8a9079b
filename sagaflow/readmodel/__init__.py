"""The read model: workflows, their histories and rejections, projected from the events topic
into Postgres for the HTTP API and the UI (see projector.py)."""

from sagaflow.readmodel.projector import PROJECTOR_GROUP, Projector, ProjectorError

__all__ = ["PROJECTOR_GROUP", "Projector", "ProjectorError"]
