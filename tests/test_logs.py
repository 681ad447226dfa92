"""resolver/logs.py: one JSON object a line, with `extra=` fields as top-level keys."""

from __future__ import annotations

import io
import json
import logging

from resolver.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    made = logging.LogRecord("pilotfish.daemon", logging.ERROR, __file__, 1, "file %s rejected", ("a.yaml",), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_line_carries_message_level_and_fields() -> None:
    line = JsonFormatter().format(record(path="/s/a.yaml", problems=["a.yaml:2: port: bad"], at=io.StringIO()))
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "file a.yaml rejected" and parsed["level"] == "error"
    assert parsed["logger"] == "pilotfish.daemon" and parsed["path"] == "/s/a.yaml"
    assert parsed["problems"] == ["a.yaml:2: port: bad"]
    assert parsed["at"].startswith("<_io.StringIO"), "values JSON cannot hold are written with str()"


def test_text_line_for_people() -> None:
    line = TextFormatter().format(record(path="/s/a.yaml"))
    assert line.endswith("error   pilotfish.daemon: file a.yaml rejected path=/s/a.yaml")
