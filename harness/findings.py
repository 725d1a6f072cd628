"""Re-export of the shared result type (defined in `audit.findings`, see its docstring)."""
from audit.findings import (  # noqa: F401
    CONDITIONS,
    EvidenceStep,
    Finding,
    Location,
    Severity,
    Verdict,
    exit_code,
    roll_up,
)
