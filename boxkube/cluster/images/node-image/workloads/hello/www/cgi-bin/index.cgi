#!/bin/sh
# The answer of boxkube/hello: the pod's name and a newline, like Kubernetes' serve-hostname.
# POD_NAME (e.g. from the downward API) wins over the hostname, which is the pod's name too.
# Each request is logged on the container's stderr (kubectl logs), as a web server's access log.
name="${POD_NAME:-${HOSTNAME:-$(hostname)}}"
echo "$REMOTE_ADDR $REQUEST_METHOD $REQUEST_URI -> $name" >&2
printf 'Content-Type: text/plain\r\n\r\n'
echo "$name"
