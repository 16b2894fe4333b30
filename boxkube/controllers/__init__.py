"""The controller manager: level-triggered control loops on shared informers and work queues.

Each controller is a module named for what it controls (`replicaset.py`,
`deployment.py`, ...) holding one `Controller` subclass; `manager.py` runs
them all over one API client and one set of shared informers.
"""
