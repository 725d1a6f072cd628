"""`audit.static`: the static legality review of submission code (issue 3).

    from audit.static import audit_file, audit_source, collect_targets
    result = audit_file(Path("records/.../train_gpt.py"))   # FileResult: findings + verdict

See engine.py for the pipeline and rules/ for what is checked.
"""
from audit.static.engine import FileResult, audit_file, audit_paths, audit_source, collect_targets, entry_files  # noqa: F401
from audit.static.rules import RULES  # noqa: F401
