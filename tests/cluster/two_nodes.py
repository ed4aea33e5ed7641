"""Run a sweep on a real two-node Ray cluster made with `ray start`, then end every process by group.

Meant to run inside a private network namespace (see test_two_nodes.py): there only the loopback
interface exists, so whatever Ray binds is reachable from this machine alone. Token auth is on.
Usage: python two_nodes.py SWEEP.yaml TEMP_DIR
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
PORT = 6399
LOG = sys.stderr


def wait_for_port(port: int, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and head.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


def alive_nodes(env: dict) -> int:
    code = (f"import ray; ray.init(address='127.0.0.1:{PORT}', logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else 0


def main(sweep: str, temp_dir: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # not the caller's Ray
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    common = ["--block", "--num-cpus", "1", "--temp-dir", temp_dir, "--disable-usage-stats"]
    nodes = [subprocess.Popen([RAY, "start", "--head", "--port", str(PORT), "--include-dashboard", "false", *common],
                              env=env, start_new_session=True, stdout=LOG, stderr=subprocess.STDOUT)]
    try:
        wait_for_port(PORT, nodes[0])
        nodes.append(subprocess.Popen([RAY, "start", "--address", f"127.0.0.1:{PORT}", "--resources",
                                       '{"second_node": 1}', *common],
                                      env=env, start_new_session=True, stdout=LOG, stderr=subprocess.STDOUT))
        deadline = time.time() + 90
        while alive_nodes(env) < 2:
            if time.time() > deadline:
                raise TimeoutError("the second node never joined")
            time.sleep(1)
        return subprocess.call([sys.executable, "-m", "orchestrator.cli", "run", sweep,
                                "--address", f"127.0.0.1:{PORT}"], env=env)
    finally:
        for node in nodes:  # `ray start` heads ignore SIGTERM: SIGKILL each node's process group
            try:
                os.killpg(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            node.wait()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
