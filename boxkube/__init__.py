"""boxkube: a Kubernetes-compatible cluster in a box."""

__version__ = "0.1.0"

# The Kubernetes version whose API boxkube copies (schemas, /version, kubectl).
KUBERNETES_VERSION = "1.37.0"
