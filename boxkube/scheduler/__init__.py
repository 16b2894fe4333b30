"""The scheduler: a queue of pending pods, filter and score plugins over a snapshot of the cluster.

`framework` holds the algorithm and the plugin interfaces, `plugins` the
in-tree plugins and the default profile, `queue` the scheduling queue;
`scheduler` wires them to informers, binds, and reports failures as events
and pod conditions; `python -m boxkube.scheduler` runs it (with leader
election through boxkube.client.leaderelection).
"""
