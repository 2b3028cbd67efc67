"""Start a user's script under limits: `python -I launch.py PARENT_PID MEMORY_MB SCRIPT [ARGS...]`.

Run by experiments/training/scripts.py instead of a `preexec_fn`, which is unsafe in a worker that has
threads. Standard library only. It caps the address space, asks the kernel to kill it when the worker
dies (PR_SET_PDEATHSIG survives exec), gives up if the worker is already gone, then becomes the script.
"""

import contextlib
import ctypes
import os
import resource
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, memory_mb, script, *args = sys.argv[1:]
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the worker's own cleanup is the only guard
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        sys.exit("the worker that started this script is gone")
    os.execv(sys.executable, [sys.executable, "-u", script, *args])  # noqa: S606  (an argument list, no shell)


if __name__ == "__main__":
    main()
