"""The scheduler: a queue of pending pods, filter and score plugins over a snapshot of the cluster.

`framework` holds the algorithm and the plugin interfaces, `plugins` the
in-tree plugins and the default profile, `queue` the scheduling queue; wiring
them to informers and binding lives beside them.
"""
