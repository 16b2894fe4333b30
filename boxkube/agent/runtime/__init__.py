"""Container runtimes the node agent drives: the interface (base) and its implementations (simulated; docker later)."""
from boxkube.agent.runtime.base import ContainerInfo, Runtime, RuntimeEvent, RuntimeFailure, Sandbox

__all__ = ["ContainerInfo", "Runtime", "RuntimeEvent", "RuntimeFailure", "Sandbox"]
