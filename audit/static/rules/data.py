"""Rules about what data and resources the program touches (DATA, NET)."""
from __future__ import annotations

import re
from dataclasses import replace

from audit.findings import EvidenceStep, Finding, Location, Severity
from audit.static.program import Program
from audit.static.rules.base import Folder, Rule

_RESERVE = re.compile(r"(gptq|calib|quant|hessian).*reserve|reserve.*(gptq|calib|quant|hessian)", re.I)
_READER = re.compile(r"loader|calib|hessian|gptq|next_batch|shard|stream|quant", re.I)
_TRAIN = ("import torch\n\n\ndef main():\n    val_loss = torch.zeros(())\n    print(f'final val_loss:{val_loss}')\n\n\n"
          "main()\n")
_HEAD = 'import torch\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'
# activation-aware scaling (AWQ-style): forward hooks record input magnitudes while batches run
_HOOKED = """
def main(model, train_loader):
    stats = {{}}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: stats.setdefault(n, inp[0].abs().mean(0)))
             for n, m in model.named_modules()]
    with torch.no_grad():
        for i in range(4):
            model({batch})
    for h in hooks:
        h.remove()
    scale_columns(model, stats)
main(m, l)
"""


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
""", _HEAD + _HOOKED.format(batch="train_loader.next_batch()")]
    INVALID = [(_HEAD + """
def main(model):
    calib = [val_tokens[i:i + 2048] for i in range(0, 65536, 2048)]
    hessians = collect_hessians(model, calib)
main(m)
""", 6), (_HEAD + _HOOKED.format(batch="val_tokens[i * 2048:(i + 1) * 2048]"), 10)]

    def check(self, prog: Program) -> None:
        for _, e in prog.of("calib", "val"):
            prog.emit(self, e, evidence=[EvidenceStep(f"{e.info.get('call')}() receives validation tokens")])
        hook = None  # the open forward-hook registration, in execution order
        for e in prog.events:
            if e.kind in ("hook", "unhook"):
                hook = e if e.kind == "hook" else None
            elif e.kind == "fwd" and hook is not None and hook.fn == e.fn and "val" in e.labels and "train" not in e.labels:
                # the same function registers the hooks and runs the pass (a hook left on from
                # training, a regulariser's capture, does not make a later evaluation calibration),
                # on validation tokens only (a loader that may be either is not evidence of it)
                prog.emit(self, e, message="validation-calibrated quantization: a forward pass over validation tokens "
                          "runs only for what forward hooks record (activation statistics)", evidence=[
                              EvidenceStep("forward hook registered here", Location(hook.path, hook.line)),
                              EvidenceStep(f"{e.info.get('call')}() runs on validation tokens and its result is discarded")])
                hook = None  # one finding per hooked pass


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


class ValAsTrainingData(Rule):
    """DATA: the record's own run evidence shows the training data was validation data: a command
    in its README or run script links or copies a validation shard to a training shard's name, the
    dataset or run it trained on is named validation-only, or its README says it trained on the
    validation set. The code can be the plain baseline; what it read is decided by the data
    folder it was pointed at, and that is where training on the answer shows."""

    id = "PG-DATA-004"
    condition = "DATA"
    confidence = "medium"
    message = "the run's own evidence shows it trained on validation data"
    VALID = [Folder({"train_gpt.py": _TRAIN, "README.md": "Run:\n\n    DATA_PATH=./data/datasets/fineweb10B_sp1024 "
                     "torchrun --nproc_per_node=8 train_gpt.py\n\nWe evaluate on the validation set only at the end.\n"})]
    INVALID = [(Folder({"train_gpt.py": _TRAIN, "README.md": "Setup:\n\n```\nln -s data/fineweb_val_000000.bin "
                        "data/valonly/fineweb_train_000000.bin\n```\n"}), "README.md:4"),
               (Folder({"train_gpt.py": _TRAIN, "README.md": "# Record\n\nVal-only training (train on the validation shard).\n"}),
                "README.md:3"),
               (Folder({"train_gpt.py": _TRAIN, "train.log": "EXPERIMENT: exp3_valonly\nstep:1/10 train_loss:5.0\n"}),
                "train.log:1")]

    def check(self, prog: Program) -> None:
        ev = prog.evidence.evidence if prog.evidence is not None else None
        if ev is None or not ev.val_as_train:
            return
        path, line, what = ev.val_as_train[0]
        prog.findings.append(Finding(self.id, self.severity, f"{self.message}: {what}", self.condition,
                                     Location(path, line), tuple(EvidenceStep(w, Location(p, ln)) for p, ln, w in ev.val_as_train[1:4]),
                                     self.confidence))


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
            if _when_missing(e):  # fetching the data or tokenizer only when absent: set-up, not evaluation
                prog.emit(self, e, severity=Severity.WARNING, message=f"downloads files the run needs when they are "
                          f"missing ({e.info.get('call')}()): set-up, but the evaluated artifact must not need it")
            else:
                prog.emit(self, e, message=f"network access reachable from the entry point: {e.info.get('call')}()")


_MISSING = re.compile(r"\b(exists|isfile|isdir|is_file|is_dir|glob)\b")


def _when_missing(e) -> bool:
    """The call runs only when a file is absent: `if not os.path.exists(...)`, `if not glob(...)`."""
    import libcst as cst

    for g in e.guards:
        if g.kind != "if":
            continue
        try:
            text = cst.Module([]).code_for_node(g.test)
        except Exception:
            continue
        if _MISSING.search(text):
            return True
    return False
