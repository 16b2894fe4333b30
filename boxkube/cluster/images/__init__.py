"""The images boxkube builds with no registry: the node image (from a Debian base made
by debootstrap) and the workload images (pause, busybox, hello). See node-image/README.md
(the node-image folder is package data: boxkube/cluster/images/node-image/, so an installed
boxkube builds its images with no source tree).

    names    the images' names and labels
    sources  the package and its node-image folder, input digests, build contexts, wheels
    base     the Debian base (debootstrap) and the static busybox
    engine   the Docker engine calls
    build    build_node_image(): each image built when missing or out of date
"""

from boxkube.cluster.images.build import BuildOptions, Images, build_images, build_node_image
from boxkube.cluster.images.names import (
    BASE_IMAGE,
    BUSYBOX_IMAGE,
    HELLO_IMAGE,
    PAUSE_IMAGE,
    WORKLOAD_IMAGES,
    node_image,
)

__all__ = [
    "BASE_IMAGE",
    "BUSYBOX_IMAGE",
    "BuildOptions",
    "HELLO_IMAGE",
    "Images",
    "PAUSE_IMAGE",
    "WORKLOAD_IMAGES",
    "build_images",
    "build_node_image",
    "node_image",
]
