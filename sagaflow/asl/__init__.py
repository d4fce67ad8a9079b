"""Amazon States Language state machines (JSONPath flavour) run durably on sagaflow.

    from sagaflow.asl import load_file, register
    register(registry, "checkout-asl", load_file("checkout.asl.yaml"))

A state machine is an ordinary workflow type: the interpreter (sagaflow.asl.interpreter) is a
deterministic workflow written against the public workflow API, closed over the definition.
"""

from sagaflow.asl.errors import StatesError
from sagaflow.asl.interpreter import register, state_machine_workflow
from sagaflow.asl.model import DefinitionError, Problem, load, load_file, schema, validate
from sagaflow.asl.run import run_definition

__all__ = [
    "DefinitionError",
    "Problem",
    "StatesError",
    "load",
    "load_file",
    "register",
    "run_definition",
    "schema",
    "state_machine_workflow",
    "validate",
]
