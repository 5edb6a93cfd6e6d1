"""MONAI Label's job subprocesses (training, batch inference, scoring) end with the server.

MONAI Label starts each job as ``python -m monailabel.interfaces.utils.app`` and stops it only
through its API. A server killed with SIGKILL left its scoring subprocess running; that orphan
went on rewriting the datastore index. Each job process now watches its parent and ends itself
(SIGTERM) as soon as the server is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

logger = logging.getLogger(__name__)
JOB_MODULE = "monailabel.interfaces.utils.app"


def is_job_process(argv=None) -> bool:
    argv = sys.argv if argv is None else argv
    return bool(argv) and argv[0].replace(os.sep, ".").endswith(JOB_MODULE.replace("monailabel.", "") + ".py")


def end_with_parent(interval: float = 1.0) -> None:
    """In a job subprocess: a daemon thread that ends this process when its parent (the server) dies."""
    if not is_job_process():
        return
    parent = os.getppid()

    def server_alive() -> bool:
        if os.getppid() != parent:
            return False
        try:  # the server may have died while this job was still importing: then we were re-parented already
            with open(f"/proc/{parent}/cmdline", "rb") as handle:
                return b"monailabel" in handle.read()
        except OSError:
            return True  # no /proc: rely on the parent id alone

    def watch():
        while server_alive():
            time.sleep(interval)
        logger.error(f"Server (pid {parent}) is gone: ending this job (pid {os.getpid()})")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="bonescan-end-with-server", daemon=True).start()
