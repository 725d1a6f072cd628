"""Dormant paths: which `if` guards are off by default, and whether the record turns them on.

Hyperparameters in these scripts are class attributes read from the environment
(`ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))`). We evaluate a guard with a tiny
interpreter over literals, `os.environ.get`/`os.getenv` defaults, config attributes and
comparisons; anything else is Unknown (treated as live). The record's own evidence
(audit.static.evidence: echoed configuration in its logs, its run scripts, its README's command
blocks) overrides the defaults.
"""
from __future__ import annotations

import libcst as cst

from audit.static.evidence import Evidence
from audit.static.ir import _lit
from audit.static.names import dotted


class _Unknown:
    def __repr__(self) -> str:
        return "Unknown"


UNKNOWN = _Unknown()
LAUNCHER_VARS = frozenset({"WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                           "MASTER_PORT", "NODE_RANK"})


class FlagEval:
    """Evaluate guard expressions under the defaults, or under the record's evidence."""

    def __init__(self, class_attrs: dict[str, cst.BaseExpression], constants: dict[str, str],
                 evidence: Evidence | None = None, functions: dict | None = None, param_args: dict | None = None):
        self.class_attrs = class_attrs
        self.constants = constants
        self.evidence = evidence
        self.functions = functions or {}  # qual -> Function, for locals like `use_slot = args.slot_enabled`
        self.param_args = param_args or {}  # (function, param) -> call sites' arguments (flow.param_args)
        self._fn = None
        self.used: list[tuple[str, str, int, str]] = []  # evidence consulted: (what, file, line, value)
        self.observed: dict = {}  # (function, expression text) -> (value, log, line): printed inline tests
        self._params: dict = {}  # (function, parameter) -> (value, evidence consulted): see _parameter

    def value(self, node, depth: int = 0):
        if depth > 12:
            return UNKNOWN
        if self.observed and isinstance(node, (cst.Name, cst.Attribute)) and self._fn is not None:
            got = self.observed.get((self._fn.qual, cst.Module([]).code_for_node(node)))
            if got is not None:
                self.used.append((cst.Module([]).code_for_node(node), got[1], got[2], str(got[0])))
                return got[0]
        if isinstance(node, cst.Name):
            v = node.value
            if v in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[v]
            if v == "__name__":
                return "__main__"
            if v in self.constants:
                return self.constants[v]
            f = self._fn
            while f is not None:  # a local (or enclosing) variable assigned exactly once
                if v in f.assigns:
                    node = f.assigns[v]
                    return UNKNOWN if node is None else self.value(node, depth + 1)
                if v in f.params:
                    return self._parameter(f, v, depth)
                f = f.parent
            return UNKNOWN
        if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
            v = _lit(node)
            return UNKNOWN if v is None else v
        if isinstance(node, cst.Attribute):
            name = node.attr.value
            if self.evidence is not None and name in self.evidence.attrs:
                val, f, ln = self.evidence.attrs[name]
                self.used.append((name, f, ln, val))
                return _coerce(val)
            if name in self.class_attrs:
                default = self.class_attrs[name]
                env = self.evidence.env if self.evidence is not None else {}
                if name.upper() in env and _literal(default):
                    # a config field with a literal default, filled from its upper-case environment
                    # variable (`ttt_enabled: bool = False` <- TTT_ENABLED by a from_env helper)
                    val, f, ln = env[name.upper()]
                    self.used.append((name.upper(), f, ln, val))
                    return _coerce(val)
                return self.value(default, depth + 1)
            return UNKNOWN
        if isinstance(node, cst.Call):
            fname = dotted(node.func) or ""
            module = self.functions.get("<module>")
            if isinstance(node.func, cst.Name) and module is not None:
                alias = module.assigns.get(node.func.value)  # `_E = os.environ.get`
                if isinstance(alias, (cst.Attribute, cst.Name)):
                    fname = dotted(alias) or fname
            args = [a.value for a in node.args if a.keyword is None]
            if fname.endswith(("environ.get", "getenv")) and args:
                key = self.value(args[0], depth + 1)
                if key in LAUNCHER_VARS:  # set by torchrun at run time, not a setting of the record
                    return UNKNOWN
                default = self.value(args[1], depth + 1) if len(args) > 1 else None
                if isinstance(key, str) and self.evidence is not None and key in self.evidence.env:
                    val, f, ln = self.evidence.env[key]
                    self.used.append((key, f, ln, val))
                    return val
                return default
            if fname in ("bool", "int", "float", "str") and args:
                inner = self.value(args[0], depth + 1)
                if inner is UNKNOWN:
                    return UNKNOWN
                try:
                    return {"bool": _truthy, "int": lambda x: int(float(x)), "float": float, "str": str}[fname](inner)
                except (TypeError, ValueError):
                    return UNKNOWN
            if fname == "getattr" and len(args) >= 2 and isinstance(args[1], cst.SimpleString):
                name = args[1].evaluated_value
                fake = cst.Attribute(value=args[0], attr=cst.Name(name)) if isinstance(name, str) and name.isidentifier() else None
                got = self.value(fake, depth + 1) if fake is not None else UNKNOWN
                if got is UNKNOWN and len(args) > 2 and (fake is None or name not in self.class_attrs):
                    return self.value(args[2], depth + 1)
                return got
            if fname in ("min", "max") and len(args) >= 2 and not node.args[0].star:
                vals = [self.value(a, depth + 1) for a in args]
                if all(isinstance(v, (int, float)) for v in vals):
                    return (min if fname == "min" else max)(vals)
                return UNKNOWN
            if fname in ("range",) and args:
                return self.value(args[-1] if len(args) <= 2 else args[1], depth + 1)
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("lower", "strip", "upper"):
                inner = self.value(node.func.value, depth + 1)
                return getattr(inner, node.func.attr.value)() if isinstance(inner, str) else UNKNOWN
            return UNKNOWN
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            v = self.value(node.expression, depth + 1)
            return UNKNOWN if v is UNKNOWN else not v
        if isinstance(node, cst.BooleanOperation):
            left = self.value(node.left, depth + 1)
            right = self.value(node.right, depth + 1)
            if isinstance(node.operator, cst.And):
                if left is not UNKNOWN and not left:
                    return left
                if right is not UNKNOWN and not right:
                    return right
                return UNKNOWN if UNKNOWN in (left, right) else right
            if left is not UNKNOWN and left:
                return left
            if right is not UNKNOWN and right:
                return right
            return UNKNOWN if UNKNOWN in (left, right) else right
        if isinstance(node, cst.Comparison):  # chains too: `0.0 < hard_frac < 1.0`
            left = self.value(node.left, depth + 1)
            result = True
            for ct in node.comparisons:
                right = self._operand(ct.comparator, depth)
                if left is UNKNOWN or right is UNKNOWN or (isinstance(right, tuple) and UNKNOWN in right):
                    return UNKNOWN
                try:
                    result = _COMPARE[type(ct.operator).__name__](left, right)
                except (KeyError, TypeError):
                    return UNKNOWN
                if not result:
                    return False
                left = right
            return result
        if isinstance(node, cst.IfExp):
            t = self.value(node.test, depth + 1)
            if t is UNKNOWN:
                return UNKNOWN
            return self.value(node.body if t else node.orelse, depth + 1)
        return UNKNOWN

    def _operand(self, node, depth: int):
        if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            return tuple(self.value(e.value, depth + 1) for e in node.elements)
        return self.value(node, depth + 1)

    def _parameter(self, f, name: str, depth: int):
        """A parameter's value when every reachable call site passes the same known value (or
        leaves the same known default): `evaluate(model, use_slot=args.slot_enabled)`. A site under
        an `if` that is off passes nothing (`if args.ngram_cache: evaluate(..., use_ngram=True)`).
        Memoized per parameter (with the evidence it consulted): call chains that pass a flag down
        through several helpers, each called from several sites, would otherwise be re-evaluated
        once per path; a parameter met again while its own value is being computed is Unknown."""
        key = (f.qual, name)
        got = self._params.get(key)
        if got is not None:
            self.used.extend(got[1])
            return got[0]
        self._params[key] = (UNKNOWN, [])
        mark = len(self.used)
        values = []
        saved = self._fn
        try:
            for caller, node, guards in self.param_args.get(key, ()):
                self._fn = caller
                if any(_passes(self.value(test, depth + 1), polarity) is False for test, polarity in guards):
                    continue
                if node is None:
                    node, self._fn = f.defaults.get(name), f
                values.append(UNKNOWN if node is None else self.value(node, depth + 1))
        finally:
            self._fn = saved
        result = UNKNOWN if not values or any(v is UNKNOWN or v != values[0] for v in values) else values[0]
        self._params[key] = (result, self.used[mark:])
        return result

    def set_observed(self, observed: dict) -> None:
        """Inline tests the logs show (Program): they change what parameters evaluate to."""
        self.observed = observed
        self._params.clear()

    def branch(self, test, fn: str = ""):
        """True/False/UNKNOWN: the value of an `if` test in the run this evaluator describes, with
        nothing recorded as consulted evidence (the tracer asks this of every `if`)."""
        self._fn = self.functions.get(fn)
        mark = len(self.used)
        v = _passes(self.value(test), True)
        del self.used[mark:]
        return v

    def guard_open(self, test, polarity: bool, kind: str = "if", fn: str = ""):
        """True/False/UNKNOWN: does execution pass this guard?"""
        self._fn = self.functions.get(fn)
        v = self.value(test)
        if kind == "range":
            return v > 0 if isinstance(v, (int, float)) and not isinstance(v, bool) else UNKNOWN
        return _passes(v, polarity)


def _passes(v, polarity: bool):
    """True/False/UNKNOWN: does a guard of this polarity let a test value `v` through?"""
    if v is UNKNOWN:
        return UNKNOWN
    try:
        return bool(v) == polarity
    except Exception:
        return UNKNOWN


_COMPARE = {"Equal": lambda a, b: a == b, "NotEqual": lambda a, b: a != b, "GreaterThan": lambda a, b: a > b,
            "LessThan": lambda a, b: a < b, "GreaterThanEqual": lambda a, b: a >= b,
            "LessThanEqual": lambda a, b: a <= b, "In": lambda a, b: a in b, "NotIn": lambda a, b: a not in b,
            "Is": lambda a, b: a is b, "IsNot": lambda a, b: a is not b}


def _literal(node) -> bool:
    return isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)) or (
        isinstance(node, cst.Name) and node.value in ("True", "False", "None"))


def _truthy(x) -> bool:
    if isinstance(x, str):
        return x.strip().lower() not in ("", "0", "false", "no", "off", "none")
    return bool(x)


def _coerce(s: str):
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s
