"""Where the orchestrator produces each kind of effect (the records go out in the batch's one
transaction; here: their topic, key and bytes)."""

from __future__ import annotations

import pytest

from sagaflow import codec
from sagaflow.config import Config
from sagaflow.core import messages as m
from sagaflow.core.registry import Registry
from sagaflow_orchestrator.loop import Orchestrator

pytestmark = pytest.mark.unit

CONFIG = Config.from_env({})


def test_each_effect_goes_to_its_topic_keyed_by_its_target() -> None:
    orchestrator = Orchestrator(CONFIG, Registry())
    topics = CONFIG.topics

    task = m.ActivityTask("wf", "r", "t", 2, 1, "charge", "payments", b"{}", "wf/2", 0, 0)
    assert orchestrator._effect_record(task) == (
        topics.tasks("payments"),
        "wf",
        codec.encode_task(task),
    )

    signal = m.SignalWorkflow("other-wf", "approve", b"{}", "c-1")
    topic, key, value = orchestrator._effect_record(m.CommandToWorkflow(signal))
    assert (topic, key) == (topics.commands, "other-wf")
    assert codec.decode_command(value) == signal

    reply = m.ReplyToCaller("api-7", "c-2", True, b"42")
    topic, key, value = orchestrator._effect_record(reply)
    assert (topic, key) == (topics.replies, "api-7")
    assert codec.decode_reply(value) == reply
