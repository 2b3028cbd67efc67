import contextlib
import ctypes
import sys

from django.apps import AppConfig

PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3


def protect_process() -> None:
    """Make this process non-dumpable (Linux): another process of the same Unix user, such as a user's
    training script run by a worker, may then not read its memory or its environment
    (/proc/<pid>/environ holds DATABASE_URL and SECRET_KEY). It also turns off core dumps. Root, with
    CAP_SYS_PTRACE, still can."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def is_protected() -> bool:
    return sys.platform.startswith("linux") and ctypes.CDLL(None).prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0


class PortalConfig(AppConfig):
    """The project package as an app, so its templates, static files and commands are found."""

    name = "mlops_portal"
    label = "portal"
    verbose_name = "MLOps Portal"

    def ready(self) -> None:
        protect_process()  # every portal process: web, workers, beat, the model server and its writer
