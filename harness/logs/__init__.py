"""Train logs: `parse_log(path_or_text) -> RunLog`, the typed view of what a run printed.

See `harness.logs.parse` for the formats handled and `harness.logs.model` for the fields.
"""
from harness.logs.model import Artifact, EvalPhase, Located, RunLog, SizeLine, StepLine, StopLine, TimingLine
from harness.logs.parse import parse_log, read_text

__all__ = [
    "Artifact", "EvalPhase", "Located", "RunLog", "SizeLine", "StepLine", "StopLine", "TimingLine",
    "parse_log", "read_text",
]
