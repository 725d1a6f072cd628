"""Rules about count tables built from validation tokens (n-gram caches, C1)."""
from __future__ import annotations

from audit.findings import EvidenceStep, Location
from audit.static.program import Program, shared_loops
from audit.static.rules.base import Rule
from audit.static.rules.examples import marked, scored_chunks



class TableHoldsScoredTokens(Rule):
    """C1 (strict causality): a count table (an n-gram or cache table) is filled with validation
    tokens before those tokens are scored with it: built from all of validation first and then
    used to rescore every position ("two-pass"), or updated with a chunk's targets before the
    chunk's probabilities are read. A read for position t from a table that already holds token
    t or later depends on the token being scored. Tables read first and updated after, in each
    iteration (a score-first cache), are the legal shape."""

    id = "PG-C1-005"
    condition = "C1"
    confidence = "high"
    message = "lookahead through a count table: validation tokens are added to the table before they are scored with it"
    VALID = [scored_chunks("""
        p = (table[x] + 1) / (table.sum() + 1024)
        nll_sum += -torch.log(p[y]).sum()
        np.add.at(table, y, 1)
    """, "model, table", "main(m, np.zeros(1024))")]
    INVALID = [marked(scored_chunks("""
        p = (table[x] + 1) / (table.sum() + 1024)
        nll_sum += -torch.log(p[y]).sum()
    """, "model, table", "main(m, np.zeros(1024))", setup="np.add.at(table, val_tokens, 1)  # <-")),
        marked(scored_chunks("""
        table[y] += 1  # <-
        p = (table[x] + 1) / (table.sum() + 1024)
        nll_sum += -torch.log(p[y]).sum()
    """, "model, table", "main(m, np.zeros(1024))", no_grad=False))]

    def check(self, prog: Program) -> None:
        scores = prog.val_scores()
        if not scores:
            return
        events = prog.events
        done = set()
        for i, w in prog.of("twrite", "val"):
            if w.info.get("unreported") or (w.path, w.line) in done:
                continue
            later = [(j, s) for j, s in scores if j > i]
            if not later:
                continue
            earlier_read = any(j < i and e.kind in ("tread", "score") and shared_loops(w, e)
                               for j, e in enumerate(events) if e.kind in ("tread", "score"))
            same_iter = [s for _, s in later if shared_loops(w, s)]
            if earlier_read and not same_iter:
                continue  # read first, then counted: a score-first cache or causal hints
            if same_iter and earlier_read:
                continue
            if "val:now" not in w.labels:
                continue  # only tokens of earlier iterations: already scored there
            s = same_iter[0] if same_iter else later[0][1]
            done.add((w.path, w.line))
            prog.emit(self, w, related=[s], evidence=[
                EvidenceStep("the table is read to score validation tokens here", Location(s.path, s.line))])
