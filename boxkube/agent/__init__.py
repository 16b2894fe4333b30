"""The node agent: registers its Node, runs the pods bound to it through a runtime, reports their status."""
