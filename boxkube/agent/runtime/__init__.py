"""Container runtimes the node agent drives: the interface (base) and its implementations (simulated, docker)."""
from boxkube.agent.runtime.base import (
    ContainerConfig,
    ContainerInfo,
    Mount,
    Runtime,
    RuntimeEvent,
    RuntimeFailure,
    Sandbox,
)

__all__ = ["ContainerConfig", "ContainerInfo", "Mount", "Runtime", "RuntimeEvent", "RuntimeFailure", "Sandbox"]
