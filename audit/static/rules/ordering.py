"""Rules about the order of learning and scoring (C3, C4, SLOT, validation in training)."""
from __future__ import annotations

import re

from audit.findings import EvidenceStep, Location, Severity
from audit.static.program import Program, shared_loops, trains_local_module
from audit.static.rules.base import Rule

_HEAD = 'import torch\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'
EPOCHY = re.compile(r"epoch|ep\b|_ep$|^ep", re.I)


def _step(msg, e) -> EvidenceStep:
    return EvidenceStep(msg, Location(e.path, e.line))


def _free_in(prog: Program, u, loops) -> bool:
    """A requires_grad tensor (a SLOT delta) created in the update's function or loop. Parameters
    a module creates in its `__init__` (a LoRA adapter's A and B) are a model's weights, not a
    delta added to the scored positions' hidden states or logits."""
    for _, f in prog.of("free"):
        if f.fn.rsplit(".", 1)[-1] == "__init__":
            continue
        if f.fn == u.fn or (loops and shared_loops(f, u)[: len(loops)] == loops):
            return True
    return False


def _only_earlier(u, s, loops) -> bool:
    """True when update `u` learns only from validation tokens of earlier iterations of the
    loops it shares with score `s` (a loop-carried `prev` chunk, `chunks[k - 1]`, a list of
    scored chunks), while `s` scores this iteration's tokens: those tokens were scored by an
    earlier iteration, before this update, which is score-first (C3)."""
    if "val:now" in u.labels or "val:now" not in s.labels:
        return False
    ids = {lp.node_id for lp in loops}
    prior = {int(l[3:]) for l in u.labels if l.startswith("vp:")}
    return bool(prior) and prior <= ids


class AdaptBeforeScore(Rule):
    """C3 (score before update): within one iteration of a chunk/batch loop, a gradient update
    fed by validation tokens runs before those tokens' score is accumulated, so the score comes
    from a model that has already learned from the tokens it scores (adapt-then-score, the
    save/step/evaluate/restore pattern reviewers rejected)."""

    id = "PG-C3-001"
    condition = "C3"
    confidence = "high"
    message = "adapt-before-score: an update fed by this chunk's validation tokens runs before the chunk is scored"
    VALID = [_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            loss_sum += model(x, y)
        if ci < 9:
            model(x, y).backward()
            opt.step()
main(m, o)
"""]
    VALID += [_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    prev = None
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100 + 1]
        if prev is not None:
            model(prev).backward()
            opt.step()
        with torch.no_grad():
            loss_sum += model(chunk)
        prev = chunk
main(m, o)
""", _HEAD + """
def main(model, opt, chunks):
    loss_sum = 0.0
    for k in range(len(chunks)):
        if k > 0:
            model(chunks[k - 1]).backward()
            opt.step()
        with torch.no_grad():
            loss_sum += model(chunks[k])
main(m, o, [val_tokens[i:i + 101] for i in range(0, 1000, 100)])
""", _HEAD + """
def main(model, opt):
    loss_sum = 0.0
    scored = []
    for k in range(10):
        if scored:
            model(torch.cat(scored)).backward()
            opt.step()
        chunk = val_tokens[k * 100:(k + 1) * 100 + 1]
        with torch.no_grad():
            loss_sum += model(chunk)
        scored.append(chunk)
main(m, o)
""", _HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for k in range(1, 10):
        model(val_tokens[(k - 1) * 100:k * 100 + 1]).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(val_tokens[k * 100:(k + 1) * 100 + 1])
main(m, o)
"""]
    INVALID = [(_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        model(chunk).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(chunk)
main(m, o)
""", 8), (_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    seen = []
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        seen.append(chunk)
        model(torch.cat(seen)).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(chunk)
main(m, o)
""", 10), (_HEAD + """
def main(model, opt, chunks):
    loss_sum = 0.0
    for k in range(1, len(chunks)):
        model(chunks[k - 1]).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(chunks[k - 1])
main(m, o, [val_tokens[i:i + 101] for i in range(0, 1000, 100)])
""", 7), (_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for k in range(1, 10):
        model(val_tokens[(k - 1) * 100:(k + 1) * 100]).backward()
        opt.step()
        with torch.no_grad():
            loss_sum += model(val_tokens[k * 100:(k + 1) * 100 + 1])
main(m, o)
""", 7)]

    def check(self, prog: Program) -> None:
        scores = prog.val_scores()
        for i, u in prog.val_updates():
            if _train_loop_updates(prog, u):
                continue  # validation data in the training loop: PG-DATA-002 reports it
            for j, s in scores:
                loops = shared_loops(u, s)
                if j > i and loops:
                    if _only_earlier(u, s, loops):
                        continue  # trains on chunks scored by earlier iterations: legal
                    if _free_in(prog, u, loops):
                        break  # a SLOT delta: PG-C1-002 reports it
                    if _epoch_loop(loops[-1]):
                        # epochs over the validation set, each followed by an eval: pre-eval TTT
                        prog.emit(PreEvalAdaptation, u, related=[s], evidence=[
                            _step("an eval inside the same epoch loop scores the adapted model", s),
                            EvidenceStep("epoch loop", Location(loops[-1].path, loops[-1].line))])
                        break
                    prog.emit(self, u, evidence=[_step("the same iteration then scores it here", s),
                                                 EvidenceStep("loop over chunks/batches", Location(loops[-1].path, loops[-1].line))],
                              related=[s])
                    break


class NonCausalSlot(Rule):
    """C1 (strict causality): SLOT-style eval optimizes a free delta/bias tensor with a loss on
    the very positions it then scores; each position's distribution then depends on its own
    target. Optimizing only on already-scored context is the causal variant."""

    id = "PG-C1-002"
    condition = "C1"
    message = "non-causal SLOT: a delta optimized on the positions being scored, before they are scored"
    VALID = [_HEAD + """
def main(model):
    nll_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            nll_sum += model(chunk)
main(m)
"""]
    INVALID = [(_HEAD + """
def main(model):
    nll_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        delta = torch.zeros(512, requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=0.01)
        for _ in range(8):
            model(chunk, delta).backward()
            opt.step()
        with torch.no_grad():
            nll_sum += model(chunk, delta)
main(m)
""", 11)]

    def check(self, prog: Program) -> None:
        scores = prog.val_scores()
        for i, u in prog.val_updates():
            for j, s in scores:
                loops = shared_loops(u, s)
                if j > i and loops and _free_in(prog, u, loops):
                    prog.emit(self, u, evidence=[_step("the positions are scored here", s)], related=[s])
                    break


def _train_loop_updates(prog: Program, u) -> bool:
    """The update is the training loop's own step (its data includes training shards, or it sits
    in the function of the training step): validation data there is training on validation. An
    evaluation with TTT called from the training loop (periodic validation) is not that."""
    if "train" in u.labels:
        return True
    for _, o in prog.of("update", "train"):
        if shared_loops(o, u) and "val" not in o.labels and o.fn == u.fn:
            return True
    return False


class PreEvalAdaptation(Rule):
    """C3: an update fed by validation tokens runs outside any score-first loop and before a
    later scoring of validation tokens (pre-quant TTT, pre-eval epochs). The final number then
    comes from a model that trained on the tokens it scores, even when the score loop itself is
    frozen."""

    id = "PG-C3-002"
    condition = "C3"
    confidence = "high"
    message = "pre-eval adaptation: the model is trained on validation tokens before they are scored"
    VALID = [_HEAD + """
def main(model, opt, train_loader):
    for step in range(100):
        x, y = train_loader.next_batch()
        model(x, y).backward()
        opt.step()
    loss_sum = 0.0
    with torch.no_grad():
        loss_sum += model(val_tokens)
main(m, o, l)
"""]
    INVALID = [(_HEAD + """
def main(model, opt):
    for epoch in range(10):
        for i in range(0, 1000, 100):
            model(val_tokens[i:i + 100]).backward()
            opt.step()
    quantize(model)
    loss_sum = 0.0
    with torch.no_grad():
        loss_sum += model(val_tokens)
main(m, o)
""", 7)]

    def check(self, prog: Program) -> None:
        _uncovered(prog, self, "pre")


class Rescoring(Rule):
    """C4 (single left-to-right pass): after a score-first pass, more updates on the scored
    validation tokens ("recovery" epochs) and then a second scoring whose number is reported:
    tokens are scored twice, the second time by a model that learned from them."""

    id = "PG-C4-001"
    condition = "C4"
    confidence = "high"
    message = "rescoring: validation tokens are scored again after further training on them"
    VALID = AdaptBeforeScore.VALID
    INVALID = [(_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        model(chunk).backward()
        opt.step()
    for epoch in range(3):
        model(val_tokens).backward()
        opt.step()
    final_loss = 0.0
    with torch.no_grad():
        final_loss += model(val_tokens)
main(m, o)
""", 13)]

    INVALID += [(_HEAD + """
def score_first(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        model(chunk).backward()
        opt.step()
    return loss_sum
def main(model, opt):
    first = score_first(model, opt)
    final_loss = 0.0
    with torch.no_grad():
        for ci in range(10):
            final_loss += model(val_tokens[ci * 100:(ci + 1) * 100])
    print(final_loss)
main(m, o)
""", 18), (_HEAD + """
def ttt_pass(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        model(chunk).backward()
        opt.step()
    return loss_sum
def main(model, opt):
    ttt_pass(model, opt)
    val_loss = ttt_pass(model, opt)
    print(val_loss)
main(m, o)
""", 9)]

    def check(self, prog: Program) -> None:
        _uncovered(prog, self, "re")
        _rescored(prog, self)


def _exclusive(a, b) -> bool:
    """Two events on opposite branches of one condition (two eval modes behind a flag):
    `if c: ... else: ...`, or `if c:` and later `if not c:` in the same function."""
    for g in a.guards:
        if g.kind != "if":
            continue
        for h in b.guards:
            if h.kind != "if":
                continue
            if g.test is h.test:
                if g.polarity != h.polarity:
                    return True
                continue
            if g.fn == h.fn:
                (tg, pg), (th, ph) = _condition(g), _condition(h)
                if tg and tg == th and pg != ph:
                    return True
    return False


def _condition(g) -> tuple[str, bool]:
    """A guard's test as text without leading `not`s, and the polarity that makes it hold."""
    import libcst as cst

    node, pol = g.test, g.polarity
    while isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        node, pol = node.expression, not pol
    try:
        return cst.Module([]).code_for_node(node), pol
    except Exception:
        return "", pol


def _rescored(prog: Program, rule: Rule) -> None:
    """C4 without a further update: a score-first pass adapted the model on tokens it had just
    scored, and a later, separate scoring of validation tokens (a second pass, a "final" eval
    after TTT) runs with that adapted model. Each token's first score came before the
    adaptation; the later number scores it again with a model that learned from it."""
    scores = prog.val_scores()
    for i, u in prog.val_updates():
        first = prog.covering_score(i, u) if not _train_loop_updates(prog, u) else None
        if first is None:
            continue
        later = next((s for j, s in scores if j > i and not shared_loops(u, s) and not _exclusive(u, s)), None)
        if later is None:
            continue
        ev = [_step("a score-first pass scores validation tokens here", first),
              _step("then adapts the model on them here", u)]
        msg = ("rescoring: validation tokens are scored again by the model a score-first pass adapted on them "
               "(a C4 violation when this later number is the reported one)")
        if _in_warmup(u):
            prog.emit(rule, later, evidence=ev, severity=Severity.WARNING,
                      message=msg + " (the adaptation is in a warm-up loop: check its weights are discarded)")
        else:
            prog.emit(rule, later, evidence=ev, message=msg, related=[u])


class ValInTraining(Rule):
    """DATA: validation tokens feed the training loop (the loop that also learns from training
    shards). Training on validation data is the plainest way to break C1/C3."""

    id = "PG-DATA-002"
    condition = "DATA"
    confidence = "high"
    message = "validation tokens are used in the training loop"
    VALID = PreEvalAdaptation.VALID
    INVALID = [(_HEAD + """
def main(model, opt, train_loader):
    for step in range(100):
        x, y = train_loader.next_batch()
        model(x, y).backward()
        model(val_tokens[step:step + 64]).backward()
        opt.step()
    loss_sum = 0.0
    with torch.no_grad():
        loss_sum += model(val_tokens)
main(m, o, TokenLoader("data/fineweb_train_*.bin"))
""", 8)]

    def check(self, prog: Program) -> None:
        _uncovered(prog, self, "train")


def _uncovered(prog: Program, rule: Rule, want: str) -> None:
    """Shared by C3-002, C4-001 and DATA-002: val updates not preceded by their score."""
    scores = prog.val_scores()
    covered_before = False
    for i, u in prog.val_updates():
        if trains_local_module(prog, u):
            continue  # a diagnostic probe trained on frozen activations: not the scored model
        in_train = _train_loop_updates(prog, u)  # a periodic eval in the training loop is no score-first TTT
        if not in_train and prog.covering_score(i, u) is not None:
            covered_before = True
            continue
        if not in_train and any(j > i and shared_loops(u, s) for j, s in scores):
            continue  # scored later in the same iteration: PG-C3-001 / PG-C1-002 report it
        later = next((s for j, s in scores if j > i and not shared_loops(u, s) and not _exclusive(u, s)), None)
        if in_train:
            kind = "train"
        elif later is None:
            continue
        else:
            kind = "re" if covered_before else "pre"
        if kind != want:
            continue
        ev = [_step("validation tokens are scored afterwards here", later)] if later is not None else []
        if _in_warmup(u):
            # compile warm-ups train throwaway adapters on a few val batches; a reviewer confirms
            prog.emit(rule, u, evidence=ev, severity=Severity.WARNING,
                      message=rule.message + " (inside a warm-up loop: check the adapted weights are discarded)")
            continue
        prog.emit(rule, u, evidence=ev)


class LastChunkTrained(Rule):
    """C3 note: a score-first loop that also trains after its last chunk. Legal (nothing is
    scored afterwards by this loop) but wasted eval time, and suspicious if anything scores later."""

    id = "PG-C3-003"
    condition = "C3"
    severity = Severity.NOTE
    message = "score-first TTT also trains on the last chunk (nothing left to score with it)"
    VALID = AdaptBeforeScore.VALID
    INVALID = [(_HEAD + """
def main(model, opt):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        model(chunk).backward()
        opt.step()
main(m, o)
""", 10)]

    def check(self, prog: Program) -> None:
        for i, u in prog.val_updates():
            s = prog.covering_score(i, u)
            if s is None:
                continue
            loops = shared_loops(u, s)
            depth = len(loops)
            inner_guards = [g for g in u.guards if g.depth >= depth and g.kind == "if"]
            if not inner_guards:
                prog.emit(self, u)


class MultiEpochTTT(Rule):
    """C3 note: score-first TTT with several epochs per chunk. Legal (rules.md accepts one or
    several epochs), noted so a reviewer sees the eval-time cost."""

    id = "PG-C3-004"
    condition = "C3"
    severity = Severity.NOTE
    message = "score-first TTT runs several epochs over each scored chunk"
    VALID = AdaptBeforeScore.VALID
    INVALID = [(_HEAD + """
def main(model, opt, ttt_epochs):
    loss_sum = 0.0
    for ci in range(10):
        chunk = val_tokens[ci * 100:(ci + 1) * 100]
        with torch.no_grad():
            loss_sum += model(chunk)
        if ci < 9:
            for epoch in range(ttt_epochs):
                model(chunk).backward()
                opt.step()
main(m, o, 3)
""", 12)]

    def check(self, prog: Program) -> None:
        for i, u in prog.val_updates():
            s = prog.covering_score(i, u)
            if s is None:
                continue
            inner = u.loops[len(shared_loops(u, s)):]
            if any(_epoch_loop(lp) for lp in inner):
                prog.emit(self, u)


def _in_warmup(u) -> bool:
    return any("warmup" in _iter_text(lp).lower() or any("warmup" in t for t in lp.targets) for lp in u.loops)


def _epoch_loop(lp) -> bool:
    return any(EPOCHY.search(t) for t in lp.targets) or bool(EPOCHY.search(_iter_text(lp)))


def _iter_text(lp) -> str:
    try:
        import libcst as cst

        return cst.Module([]).code_for_node(lp.iter_node)[:200]
    except Exception:
        return ""
