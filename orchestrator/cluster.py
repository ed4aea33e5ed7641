"""Connecting to Ray: an embedded local instance on loopback by default, or an existing cluster.

Ray itself waits rather than fails: an address nobody listens on is retried for minutes, and a task
asking for more than any node has is queued forever. So an address is tried once, within about
20 seconds, and the sweep's task shape is checked against the nodes before anything is submitted.
"""
from __future__ import annotations

import os
import re
import socket

from orchestrator.errors import SpecError, Unavailable

CONNECT_SECONDS = 10


def ensure_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
               key: str = "cluster.address"):
    """Reuse a running Ray in this process, else join ``address`` or start a local one on 127.0.0.1.

    ``num_gpus`` declares a local instance's GPUs (default: those Ray detects); on a machine without
    any, they are logical GPUs that Ray schedules and assigns like real ones (the packing tests use it).
    An address that cannot be joined raises Unavailable naming ``key``. With no address, ``RAY_ADDRESS``
    (which ``ray.init`` would otherwise follow, retrying a dead one for minutes) is checked the same way.
    """
    if not address and os.environ.get("RAY_ADDRESS"):
        address, key = os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    if not address:
        # Ray's single-node mode keeps every socket on 127.0.0.1 (multi-node mode binds all interfaces and
        # advertises the machine's address). Ray reads this when first imported: set it before `import ray`.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return ray
    quiet = dict(log_to_driver=False, logging_level="ERROR", configure_logging=True)
    if address:
        _check_reachable(address, key)
        # One connection attempt of CONNECT_SECONDS instead of Ray's 20 retries of up to 40 s each.
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", "1")
        os.environ.setdefault("RAY_py_gcs_connect_timeout_s", str(CONNECT_SECONDS))
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as e:
            found = ("no running Ray cluster found at 'auto'" if address == "auto" else
                     f"no Ray cluster answered at {address} ({(str(e).splitlines() or [''])[0][:200]})")
            raise Unavailable(f"{key}: {found}; start one (`ray start --head`) or {_unset(key)} for a local Ray") from None
    else:
        try:
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     **quiet)
        except Exception as e:  # e.g. "The current node timed out during startup" on a saturated machine
            ray.shutdown()
            raise Unavailable(f"a local Ray did not start: {(str(e).splitlines() or [type(e).__name__])[0][:200]}; "
                              "nothing was run: run the command again when the machine is less busy") from None
    return ray


def _check_reachable(address: str, key: str) -> None:
    """Fail within seconds when nothing listens at HOST:PORT (``auto`` is resolved by Ray itself)."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\[\]\s/]+?)\]?:(\d{1,5})", address)
    if not found:
        return
    host, port = found.group(1), int(found.group(2))
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else (str(e) or type(e).__name__)
        raise Unavailable(f"{key}: cannot reach {address} ({reason}); start the cluster's head there "
                          f"(`ray start --head`), or fix the address{' (or unset RAY_ADDRESS for a local Ray)' if key == 'RAY_ADDRESS' else ''}") from None


def _unset(key: str) -> str:
    return {"RAY_ADDRESS": "unset RAY_ADDRESS", "--address": "drop --address"}.get(key, "leave cluster.address unset")


SHARED_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "cephfs", "glusterfs", "cifs", "smb3",
                      "smbfs", "9p", "virtiofs", "panfs", "wekafs", "fuse.")


def check_driver_placement(ray, root) -> None:
    """Refuse, in one line, a driver that is not on the Ray head while ``root`` is a folder on a disk of
    its own host: it would write its own results and lock, apart from the head's, and run everything
    again. An object-store root, or a folder on a network file system (NFS, Lustre, GPFS, ...), is fine."""
    from orchestrator.location import is_remote
    if is_remote(str(root)):
        return
    heads = [n for n in ray.nodes() if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})]
    here = ray.util.get_node_ip_address()
    if not heads or heads[0].get("NodeManagerAddress") in (here, "127.0.0.1", None):
        return
    try:  # attached to the head's own raylet (a head with several addresses)
        if ray.get_runtime_context().get_node_id() == heads[0].get("NodeID"):
            return
    except AttributeError:
        pass
    kind = mount_type(root)
    if kind and kind.startswith(SHARED_FILESYSTEMS):
        return
    raise Unavailable(f"storage.root: {str(root)!r} is a folder on this host ({socket.gethostname()}, {here}, "
                      f"{kind or 'local disk'}), but the Ray head is {heads[0]['NodeManagerAddress']}: this driver "
                      "would keep its own results and lock apart from the head's; run it on the head "
                      "(--address auto there), or set storage.root to a shared file system or s3://BUCKET/PREFIX")


def mount_type(path) -> str | None:
    """The file system type of the mount holding ``path`` (from /proc/mounts), or None if unknown."""
    target = os.path.realpath(path)
    while not os.path.exists(target) and target != os.path.dirname(target):
        target = os.path.dirname(target)
    best, kind = "", None
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 2:
                    point = fields[1].replace("\\040", " ")
                    inside = target == point or target.startswith(point.rstrip("/") + "/")
                    if inside and len(point) >= len(best):
                        best, kind = point, fields[2]
    except OSError:
        return None
    return kind


def connect_for(spec, address: str | None = None):
    """Ray for ``spec`` (``address`` from the command line wins over ``cluster.address``), after checking
    that some node can run one of its tasks: SpecError (exit 2) naming the resource and what the nodes have.
    A driver joining a cluster away from its head with a folder of its own host as root is refused."""
    ray = ensure_ray(address or spec.cluster_address, key="--address" if address else "cluster.address")  # or RAY_ADDRESS
    if address or spec.cluster_address or os.environ.get("RAY_ADDRESS"):
        check_driver_placement(ray, spec.results_root)
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0) >= spec.num_cpus and r.get("GPU", 0) >= spec.num_gpus for r in nodes):
        return ray
    most = {name: max((r.get(name, 0) for r in nodes), default=0) for name in ("CPU", "GPU")}
    key, need, name = (("resources.num_gpus", spec.num_gpus, "GPU") if spec.num_gpus > most["GPU"]
                       else ("resources.num_cpus", spec.num_cpus, "CPU"))
    has = (f"the largest of its {len(nodes)} nodes has {most[name]:g}" if need > most[name]
           else f"no node has {spec.num_cpus:g} CPUs and {spec.num_gpus:g} GPUs together")
    raise SpecError(spec.source, key, f"got {need:g}, but no node of the cluster can run such a task ({has}); "
                                      f"allowed: at most {most[name]:g} {name}s per task on this cluster")
