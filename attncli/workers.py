"""What a worker process of a corpus run does before anything else (see corpus._in_pool).

Kept apart from attncli.corpus so that a worker imports nothing heavy before it runs: until then, a
worker would outlive a parent killed with SIGKILL, waiting for work that never comes.
"""

import os
import signal
import sys

__all__ = ["GROUP_SIGNALS", "reports", "start"]

# What a terminal or a process manager sends to a whole process group: the parent's to handle, so
# that it stops the pool in order (a worker killed mid-reply can leave a pool waiting for ever).
GROUP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

reports = None  # the queue a worker puts its work's progress on, where the parent shows it (see corpus._in_pool)


def start(parent: int, queue=None) -> None:
    """Make this process a worker of process `parent`: it dies with its parent, and leaves the group's
    signals to it. The worker started with them blocked (the parent blocks them while it starts the
    pool): one that came meanwhile is dropped with the rest. `queue`, a multiprocessing queue, becomes
    `reports`: a worker never waits on it to exit (the parent counts the work that comes back anyway)."""
    global reports
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above: no work will ever come
        os._exit(1)
    for number in GROUP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    if queue is not None:
        queue.cancel_join_thread()
        reports = queue
