"""All audit rules; importing this package registers them in `RULES`."""
from audit.static.rules import base, data, diagnostics, ordering, parse, passes, scoring, tables  # noqa: F401
from audit.static.rules import shape  # noqa: F401  (last: it reads what the other rules found)
from audit.static.rules.base import RULES, Folder, Link, Rule  # noqa: F401
