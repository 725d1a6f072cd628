"""Rule sets: versioned YAML files that select checks by id and set their numbers.

`load_ruleset("track_10min_16mb")` loads a built-in set (this folder); a path loads any file.
A rule set never holds code (no expressions, no eval): only `name`, `version`, `track` and a
`checks` mapping of rule id -> settings, each validated against the rule's typed `Params`.
Unknown ids, unknown settings and wrong types are input errors naming the file.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InputError

HERE = Path(__file__).resolve().parent
DEFAULT_FOR_TRACK = {
    "track_10min_16mb": "track_10min_16mb",
    "track_non_record_16mb": "track_non_record_16mb",
}
# A folder whose track cannot be told (a plain folder of reproduced logs) gets the strictest set.
FALLBACK = "track_10min_16mb"


@dataclass(frozen=True)
class Ruleset:
    name: str
    version: str
    track: str | None
    checks: dict[str, Any]  # rule id -> its Params instance, in file order
    path: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def params(self, rule_id: str) -> Any:
        return self.checks.get(rule_id)

    def setting(self, rule_id: str, name: str) -> Any:
        """The number `name` of rule `rule_id` as this set has it, else the rule's own default
        (its `Params` field): one place for a figure other rules read (the byte cap, the
        validation byte count), whether or not this set selects the rule."""
        p = self.checks.get(rule_id)
        if p is None:
            import harness.checks  # noqa: F401  (registers every rule)
            from harness.checks.registry import RULES

            p = RULES[rule_id].params()  # every field of a rule's Params has a default
        return getattr(p, name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "track": self.track, "path": self.path,
                "checks": sorted(self.checks)}


def builtin_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_file():
        return p
    stem = str(name_or_path)
    stem = stem[:-5] if stem.endswith(".yaml") else stem
    builtin = HERE / f"{stem}.yaml"
    if "/" not in stem and builtin.is_file():
        return builtin
    raise InputError(f"no such rule set; built-in: {', '.join(builtin_names())}", str(name_or_path))


def load_ruleset(name_or_path: str | Path) -> Ruleset:
    """Load and validate a rule set by built-in name or path. A file is parsed once per content:
    `check --all` asks for the same set for every record of a track."""
    path = _resolve(name_or_path)
    text = path.read_text(encoding="utf-8", errors="replace")
    return _parse_ruleset(str(path), text)


@functools.lru_cache(maxsize=32)
def _parse_ruleset(path_name: str, text: str) -> Ruleset:
    from harness.checks.registry import RULES
    import harness.checks  # noqa: F401  (registers every rule)

    path = Path(path_name)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(e, 'problem', e)}", str(path), mark.line + 1 if mark else None) from None
    if not isinstance(doc, dict):
        raise InputError("a rule set is a mapping with name, version, checks", str(path))
    for key in ("name", "version", "checks"):
        if key not in doc:
            raise InputError(f"missing `{key}`", str(path))
    checks_doc = doc["checks"]
    if not isinstance(checks_doc, dict):
        raise InputError("`checks` must map rule ids to settings", str(path))
    checks: dict[str, Any] = {}
    for rule_id, settings in checks_doc.items():
        rule = RULES.get(rule_id)
        if rule is None:
            raise InputError(f"unknown check id {rule_id!r}; known: {', '.join(sorted(RULES))}", str(path))
        if settings is not None and not isinstance(settings, dict):
            raise InputError(f"{rule_id}: settings must be a mapping", str(path))
        try:
            checks[rule_id] = rule.make_params(settings)
        except ValueError as e:
            raise InputError(str(e), str(path)) from None
    extra = {k: v for k, v in doc.items() if k not in ("name", "version", "track", "checks")}
    return Ruleset(str(doc["name"]), str(doc["version"]), doc.get("track"), checks, str(path), extra)


def ruleset_for_track(track: str | None) -> str:
    return DEFAULT_FOR_TRACK.get(track or "", FALLBACK)
