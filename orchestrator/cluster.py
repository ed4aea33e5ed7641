"""Connecting to Ray: an embedded local instance on loopback by default, or an existing cluster."""
from __future__ import annotations

import os


def ensure_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None):
    """Reuse a running Ray in this process, else join ``address`` or start a local one on 127.0.0.1.

    ``num_gpus`` declares a local instance's GPUs (default: those Ray detects); on a machine without
    any, they are logical GPUs that Ray schedules and assigns like real ones (the packing tests use it).
    """
    if not address:
        # Ray's single-node mode keeps every socket on 127.0.0.1 (multi-node mode binds all interfaces and
        # advertises the machine's address). Ray reads this when first imported: set it before `import ray`.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return ray
    quiet = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 **quiet)
    return ray
