from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.services import child_env, require_postgres


@pytest.fixture
def e2e_env(transactional_db: None, tmp_path: Path, settings: Any) -> dict[str, str]:
    """Environment for worker/beat processes that share this test's PostgreSQL database and Redis."""
    require_postgres()
    env = child_env(tmp_path)
    # The test process plays the web server: the same clocks as the workers.
    settings.JOB_HEARTBEAT_TIMEOUT = float(env["JOB_HEARTBEAT_TIMEOUT"])
    settings.JOB_REDISPATCH_AFTER = float(env["JOB_REDISPATCH_AFTER"])
    return env
