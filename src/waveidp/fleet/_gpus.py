"""Which of a node's GPUs a backend runs on, as the node's exporters number them."""

from __future__ import annotations

from waveidp import catalog
from waveidp.errors import NotFoundError
from waveidp.fleet.models import Backend, Node


def gpu_indices(node: Node, backend: Backend) -> tuple[int, ...] | None:
    """The indices (NVML's and CUDA's, the exporters' `gpu` label) of the NVIDIA GPUs `backend` uses.

    The node's NVIDIA GPUs are numbered in file order, each device taking `count` indices, as
    `wave render` hands them to an engine's container; a Jetson's integrated GPU is index 0. A
    backend without `devices` uses all of its node's. Empty: it uses none (a CPU backend). None:
    a device's hardware is not in the catalog, so the numbering cannot be told.
    """
    wanted = set(backend.devices) or {d.id for d in node.devices}
    out: list[int] = []
    index = 0
    for dev in node.devices:
        try:
            hw = catalog.hardware(dev.hardware)
        except NotFoundError:
            return None
        nvidia = "nvidia" in hw.vendor.lower()
        if nvidia and hw.kind == "soc":
            out += [0] if dev.id in wanted else []
        elif nvidia and hw.kind == "gpu":
            if dev.id in wanted:
                out += range(index, index + dev.count)
            index += dev.count
    return tuple(out)
