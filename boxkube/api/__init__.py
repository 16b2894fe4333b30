"""API machinery shared by every boxkube component (server, controllers, scheduler, agent).

Pure helpers over Kubernetes' own JSON, like k8s.io/apimachinery: nothing here
talks to etcd or HTTP.
"""
