"""Train logs: `parse_log(path_or_text) -> RunLog`, the typed view of what a run printed.

See `harness.logs.parse` for the formats handled and `harness.logs.model` for the fields.
"""
from harness.logs.model import Artifact, EvalPhase, Located, RunLog, SizeLine, StepLine, StopLine, TimingLine
from harness.logs.parse import parse_lines, parse_log, parse_log_file, read_text

__all__ = [
    "Artifact", "EvalPhase", "Located", "RunLog", "SizeLine", "StepLine", "StopLine", "TimingLine",
    "parse_lines", "parse_log", "parse_log_file", "read_text",
]
