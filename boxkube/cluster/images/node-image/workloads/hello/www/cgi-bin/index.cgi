#!/bin/sh
# The answer of boxkube/hello: the pod's name and a newline, like Kubernetes' serve-hostname.
# POD_NAME (e.g. from the downward API) wins over the hostname, which is the pod's name too.
printf 'Content-Type: text/plain\r\n\r\n'
echo "${POD_NAME:-${HOSTNAME:-$(hostname)}}"
