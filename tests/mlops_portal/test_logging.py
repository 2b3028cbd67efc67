import json
import logging

from mlops_portal.logging import JsonFormatter


def test_log_lines_are_json_with_extra_fields_kept_as_json() -> None:
    record = logging.LogRecord("jobs", logging.INFO, __file__, 1, "reconciled %s", ("jobs",), None)
    record.retried = [1, 2]
    record.job = {"id": 3}
    record.obj = object()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "reconciled jobs" and line["level"] == "INFO" and line["logger"] == "jobs"
    assert line["retried"] == [1, 2] and line["job"] == {"id": 3}
    assert line["obj"].startswith("<object object")
