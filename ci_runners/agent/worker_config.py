"""The Celery worker's configuration: from the environment only, read once at import.

AGENT_BROKER_URL (else CELERY_BROKER_URL)  the broker Redis (the only service it reaches)
AGENT_NAME                    this runner's name (default: the host name)
AGENT_QUEUES                  queues it reports in heartbeats (default: those it consumes)
AGENT_WORK_ROOT               where job dirs are made (default, as for the command line:
                              <tempdir>/ecosystem-registry-agent, reachable by the
                              sandbox's uid)
AGENT_SANDBOX                 "0" runs tests without bubblewrap (local debugging only)
AGENT_GPU_INDEX               the host index (nvidia-smi's) of the GPU this worker's jobs get
                              (default 0); the sandbox binds only that GPU's /dev/nvidiaN
                              and the driver's control nodes (`sandbox.gpu_device_args`)
AGENT_GPUS                    "0,1,2,3": pool process i takes the i-th of these GPUs (one GPU
                              per job; --concurrency at most their number); overrides
                              AGENT_GPU_INDEX
AGENT_HEARTBEAT_S / AGENT_PROGRESS_S   heartbeat and progress periods (15 s / 3 s)
AGENT_VISIBILITY_TIMEOUT_S    broker visibility timeout (default 6 h, above the longest cell)
AGENT_MAX_CELL_S              Celery time limits default to this plus setup slack
AGENT_RESTORE_INTERVAL_S / AGENT_RESTORE_THROTTLE   how often the broker looks for
                              abandoned (unacked) messages (kombu's redis transport)
AGENT_CLAIM_TTL_S             how long a cell's claim outlives its last refresh (it is
                              refreshed every AGENT_PROGRESS_S while the cell runs); the web
                              side's reaper takes a cell whose claim expired for lost
                              (default: 3 heartbeats + 45 s, at least 30 s)
"""

from __future__ import annotations

import os
import socket


def setting(name: str, default: str) -> str:
    """The variable `name`, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


AGENT_VERSION = "1.0"
BROKER_URL = setting("AGENT_BROKER_URL", setting("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
AGENT_NAME = setting("AGENT_NAME", socket.gethostname())
HEARTBEAT_S = float(setting("AGENT_HEARTBEAT_S", "15"))
PROGRESS_S = float(setting("AGENT_PROGRESS_S", "3"))
VISIBILITY_TIMEOUT_S = int(setting("AGENT_VISIBILITY_TIMEOUT_S", str(6 * 3600)))
MAX_CELL_S = int(setting("AGENT_MAX_CELL_S", str(4 * 3600)))
RESTORE_INTERVAL_S = int(setting("AGENT_RESTORE_INTERVAL_S", "10"))
RESTORE_THROTTLE = int(setting("AGENT_RESTORE_THROTTLE", "10"))
CLAIM_TTL_S = int(setting("AGENT_CLAIM_TTL_S", str(max(30, int(3 * HEARTBEAT_S + 45)))))


def configured_queues() -> list[str]:
    """AGENT_QUEUES, split; empty when unset."""
    return [queue for queue in setting("AGENT_QUEUES", "").split(",") if queue]


def sandbox_enabled() -> bool:
    return setting("AGENT_SANDBOX", "1") != "0"
