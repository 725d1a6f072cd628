"""Rules about what data and resources the program touches (DATA, NET)."""
from __future__ import annotations

import re
from dataclasses import replace

from audit.findings import EvidenceStep, Location, Severity
from audit.static.program import Program
from audit.static.rules.base import Rule

_RESERVE = re.compile(r"(gptq|calib|quant|hessian).*reserve|reserve.*(gptq|calib|quant|hessian)", re.I)
_READER = re.compile(r"loader|calib|hessian|gptq|next_batch|shard|stream|quant", re.I)
_HEAD = 'import torch\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'


class ValCalibratedQuant(Rule):
    """DATA: GPTQ/Hessian calibration batches are drawn from validation tokens, so the quantized
    artifact is fitted to the data it is scored on. Calibration on training data or
    self-generated text is fine (rules.md)."""

    id = "PG-DATA-001"
    condition = "DATA"
    confidence = "high"
    message = "validation-calibrated quantization: GPTQ/Hessian calibration reads validation tokens"
    VALID = [_HEAD + """
def main(model, train_loader):
    calib = [train_loader.next_batch() for _ in range(16)]
    hessians = collect_hessians(model, calib)
main(m, l)
"""]
    INVALID = [(_HEAD + """
def main(model):
    calib = [val_tokens[i:i + 2048] for i in range(0, 65536, 2048)]
    hessians = collect_hessians(model, calib)
main(m)
""", 6)]

    def check(self, prog: Program) -> None:
        for _, e in prog.of("calib", "val"):
            prog.emit(self, e, evidence=[EvidenceStep(f"{e.info.get('call')}() receives validation tokens")])


class TrainDataAtEval(Rule):
    """DATA: training shards are read after the training loop stopped (e.g. GPTQ calibration on
    training data during evaluation). Organizers rejected that as training-data access at eval
    time unless it runs inside the timed training budget; a reviewer checks which."""

    id = "PG-DATA-003"
    condition = "DATA"
    severity = Severity.WARNING
    message = "training shards are read after the training loop stopped (outside its timed budget?)"
    VALID = [_HEAD + """
def main(model, opt):
    loader = TokenLoader("data/fineweb_train_*.bin")
    for step in range(100):
        x, y = loader.next_batch()
        model(x, y).backward()
        opt.step()
main(m, o)
"""]
    INVALID = [(_HEAD + """
def main(model, opt):
    loader = TokenLoader("data/fineweb_train_*.bin")
    for step in range(100):
        x, y = loader.next_batch()
        model(x, y).backward()
        opt.step()
    calib = [loader.next_batch() for _ in range(64)]
    gptq_quantize(model, calib)
main(m, o)
""", 10)]

    def check(self, prog: Program) -> None:
        train_updates = [(i, e) for i, e in prog.of("update", "train") if "val" not in e.labels]
        if not train_updates:
            return
        first_i, first = train_updates[-1]  # the main loop, after any warm-up loop
        loop = first.loops[:1]
        if not loop:
            return
        last_in_loop = max(i for i, e in enumerate(prog.events) if e.loops[:1] == loop)
        reserve = sorted(n for n in prog.defaults.class_attrs if _RESERVE.search(n))
        for i, e in enumerate(prog.events):
            if i > last_in_loop and e.kind in ("read", "calib") and "train" in e.labels and e.loops[:1] != loop:
                site = next(((p, ln, m) for p, ln, m in e.chain if _READER.search(m)), None)
                at = replace(e, path=site[0], line=site[1]) if site is not None else e
                steps = [EvidenceStep("the training loop", Location(loop[0].path, loop[0].line))]
                if site is not None:
                    steps.append(EvidenceStep(f"reads shards in {e.fn}()", Location(e.path, e.line)))
                if reserve:
                    prog.emit(self, at, severity=Severity.NOTE, evidence=steps,
                              message=f"training shards are read after the training loop; the script reserves training time for it ({', '.join(reserve)})")
                else:
                    prog.emit(self, at, evidence=steps)
                return


class NetworkAccess(Rule):
    """NET: the artifact must be self-contained; a download or network call reachable from the
    entry point (urllib, requests, huggingface_hub, `curl`/`wget` in a subprocess) can fetch data
    or weights during evaluation."""

    id = "PG-NET-001"
    condition = "NET"
    confidence = "high"
    message = "network access reachable from the entry point"
    VALID = ["""import json
def main():
    cfg = json.load(open("config.json"))
main()
"""]
    INVALID = [("""import urllib.request
def main():
    urllib.request.urlretrieve("https://example.com/w.bin", "w.bin")
main()
""", 3)]

    def check(self, prog: Program) -> None:
        for _, e in prog.of("net"):
            prog.emit(self, e, message=f"network access reachable from the entry point: {e.info.get('call')}()")
