"""What a call or an expression is, to the tracer: network and dynamic code, calibration and
data reads, likelihoods and scores, SLOT deltas and hand-written gradient steps, minima over
losses, native code, comparisons of token sequences. Pure functions of the IR (audit.static.ir):
no flow state, so each can be read and tested on its own.
"""
from __future__ import annotations

import re

from audit.static.body_scan import has_call, names_read
from audit.static.flow import MUTATORS, is_val, norm
from audit.static.ir import Call, value_nodes
from audit.static.normalisation import token_comparison


NET_CALLS = ("urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.urlopen", "requests.", "httpx.",
             "huggingface_hub.", "datasets.load_dataset", "torch.hub.load", "torch.hub.download_url_to_file",
             "wget.download", "socket.create_connection", "socket.socket", "http.client.", "aiohttp.",
             "hf_hub_download", "snapshot_download", "urlopen", "urlretrieve")
NET_EXACT = frozenset(n for n in NET_CALLS if not n.endswith("."))
NET_PREFIX = tuple(n for n in NET_CALLS if n.endswith("."))
NET_SUFFIX = tuple("." + n for n in NET_CALLS if not n.endswith("."))
NET_WORDS = re.compile(r"\b(curl|wget|git clone|pip install|huggingface-cli|hf download)\b")
DYN_CALLS = ("exec", "eval", "__import__", "importlib.import_module", "runpy.run_path", "runpy.run_module",
             "importlib.util.spec_from_file_location", "compile")
CALIB = re.compile(r"gptq|hessian|calib", re.I)
READ = re.compile(r"^(next_batch|load_data_shard|load_shard|read_shard|_load_shard|fromfile|memmap|next_tokens|load_tokens|get_batch|take|load_validation_tokens|load_val_tokens)$", re.I)
ORACLE = ("min", "torch.min", "torch.minimum", "torch.amin", "torch.fmin", "np.minimum", "numpy.minimum")
SCOREY = re.compile(r"nll|loss|logp|bpb|bits|surpris", re.I)
STRONG_SCORE = re.compile(r"(loss|nll)_?sum|bits|bpb|total_nll|total_loss", re.I)
DATA_ATTR = re.compile(r"tok|data|seq|batch|ids|input|stream|window|chunk|sample|^x$|^y$|shard|file", re.I)
NLLISH = re.compile(r"nll|logp|log_prob|bits|surpris", re.I)
LIKELY_NAME = re.compile(r"loss|nll|bpb|bits|logp|log_prob|surpris", re.I)
SCORE_ACC = re.compile(r"loss|nll|bpb|bits|sum|total|byte|tok|count|cnt|score|acc|n_", re.I)


TYPED_KINDS = frozenset({"score", "mix", "tadj", "tmask", "nondist", "tkey", "oracle", "select", "cratio"})


def cst_name(name: str):
    """A libcst Name for a variable (None for a comprehension's renamed `i@123`)."""
    import libcst as cst

    return cst.Name(name) if name.isidentifier() else None


def comparison_operand(v, fn) -> bool:
    """The operand is a comparison of two token tensors (a name bound to one, or a call on one)."""
    if v is None:
        return False
    if v[0] == "n":
        return token_comparison(cst_name(v[1]), fn.all_assigns)
    if v[0] == "c":
        return token_comparison(v[1].node, fn.all_assigns)
    return False


LIKELIHOOD = frozenset({"cross_entropy", "nll_loss", "log_softmax", "logsumexp", "gather", "binary_cross_entropy"})


def likelihood_call(v) -> bool:
    """The value is computed here by a call that yields a (log-)likelihood (`F.cross_entropy(…)`,
    `logp.gather(…)`), not post-processing of a score computed elsewhere (`float(a / b)`)."""
    return has_call(v, LIKELIHOOD)


def target_only_term(p: frozenset, q: frozenset) -> bool:
    """`p` is the target's (log-)probability and `q` a term computed from the target itself
    (`beta * (y == hint)`), not another distribution indexed by it: adding q moves only the
    realized token's score."""
    return "tprob" in p and "target" in q and not ({"tprob", "tkeyed"} & q)


SCORE_CALLS = frozenset({"cross_entropy", "nll_loss", "log_softmax", "log", "logsumexp"})


def looks_scored(v) -> bool:
    """The operand is a score (`nll`, `logp[...]`, `F.cross_entropy(...)`), not index arithmetic
    that happens to use a gathered value (`bins * V + y`)."""
    for n in names_read(v):
        if SCOREY.search(n):
            return True
    return has_call(v, SCORE_CALLS)


NATIVE_CALLS = frozenset({"ctypes.CDLL", "ctypes.cdll.LoadLibrary", "ctypes.PyDLL", "ctypes.CDLL.__call__", "cffi.FFI",
                          "torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline",
                          "numpy.ctypeslib.load_library", "np.ctypeslib.load_library"})
COMPILER = re.compile(r"^(gcc|g\+\+|cc|clang|nvcc|make|cmake)$|\.c$|\.cpp$|\.cu$")


def compiles(c: Call) -> bool:
    """A subprocess that runs a compiler on a source file of the record."""
    texts = []
    for a in c.args:
        if a is not None and a[0] == "s":
            texts.append(a[1])
        elif a is not None and a[0] == "u":
            texts += [p[1] for p in a[1] if p is not None and p[0] == "s"]
    return any(COMPILER.search(t.strip()) for t in texts)


LR = re.compile(r"(^|_)(lr|eta|step_size|learning_rate)($|_)", re.I)


def manual_step(v, target):
    """The gradient of `x = x - lr * g` (maybe clamped): the value tree `g`, or None."""
    while v is not None and v[0] == "c" and v[1].attr in ("clamp", "clamp_", "clip", "detach") and v[1].recv is not None:
        v = v[1].recv
    if v is None or v[0] != "b" or v[1] != "Subtract" or target[0] != "n":
        return None
    rhs = v[3]
    if rhs is None or rhs[0] != "b" or rhs[1] != "Multiply":
        return None
    for a, g in ((rhs[2], rhs[3]), (rhs[3], rhs[2])):
        if a is not None and any(LR.search(n) for n in names_read(a) | attr_names(a)):
            return g
    return None


def attr_names(v) -> set:
    out = set()
    while v is not None and v[0] == "a":
        out.add(v[2])
        v = v[1]
    return out


def mentions(c: Call, pat) -> bool:
    def walk(v) -> bool:
        if v is None:
            return False
        if v[0] == "n":
            return bool(pat.search(v[1]))
        if v[0] == "a":
            return bool(pat.search(v[2])) or walk(v[1])
        if v[0] == "c":
            cc = v[1]
            return any(walk(a) for a in cc.args) or walk(cc.recv) or bool(pat.search(cc.attr or cc.qual or ""))
        if v[0] in ("i", "t"):
            return walk(v[1])
        if v[0] == "b":
            return walk(v[2]) or walk(v[3])
        if v[0] == "u":
            return any(walk(p) for p in v[1])
        return False
    return any(walk(a) for a in c.args) or walk(c.recv)


FACTORIES = ("zeros", "ones", "empty", "full", "randn", "rand", "zeros_like", "ones_like", "empty_like",
             "full_like", "randn_like", "tensor", "clone", "detach")


def fresh_free_tensor(c: Call) -> bool:
    """A new tensor that requires grad (a SLOT delta/bias), not `p.requires_grad_()` on a weight."""
    last = c.last
    if c.kw_literals.get("requires_grad") is True and last in FACTORIES:
        return True
    if last == "requires_grad_" and c.recv is not None and c.recv[0] == "c":
        inner = c.recv[1]
        return inner.last in FACTORIES
    if (c.qual or "").endswith(("nn.Parameter", "Parameter")) and c.args and c.args[0] is not None and c.args[0][0] == "c":
        inner = c.args[0][1]
        return inner.last in FACTORIES
    return False


def oracle_shape(c: Call) -> bool:
    """An elementwise minimum over several losses: torch.minimum(a, b), min(a, b), or
    torch.min/amin over a stack of per-model losses. `min(chunk_bpbs)` is a statistic."""
    q = c.qual or ""
    if q in ("torch.minimum", "np.minimum", "numpy.minimum", "torch.fmin") or (q == "min" and c.attr is None):
        return len(c.args) >= 2
    if q in ("torch.min", "torch.amin") or c.attr in ("min", "amin"):
        parts = list(c.args) + ([c.recv] if c.attr else [])
        return any(has_call(p, ("stack", "cat", "vstack")) for p in parts)
    return False


HOOK_REGISTER = frozenset({"register_forward_hook", "register_forward_pre_hook"})
_NOT_A_FORWARD = re.compile(r"^(print|log\w*|info|debug|warning|backward|step|zero_grad|synchronize|barrier|"
                            r"all_reduce|broadcast|remove|append|extend|update|clear|set_description)$")


def dotted_call(c) -> str:
    return (c.qual or c.attr or "call") if isinstance(c, Call) else "call"


def hook_event(v, discarded: bool, labels):
    """A statement-call's part in hook-based calibration (AWQ, SmoothQuant, activation
    statistics): ("hook", ()) for a forward-hook registration (also inside
    `hooks.append(m.register_forward_hook(...))`), ("unhook", ()) for a handle's `.remove()`,
    ("fwd", labels) for a call whose result is thrown away but whose arguments carry validation
    tokens -- run only for what hooks record. None for anything else."""
    if v is None or v[0] not in ("c", "u"):
        return None
    if _registers_hook(v):
        return "hook", ()
    c = v[1]
    if v[0] != "c" or not discarded:
        return None
    if c.attr == "remove" and not c.args and not c.kwargs:
        return "unhook", ()
    name = c.last
    if _NOT_A_FORWARD.match(name or "") or c.attr in MUTATORS:
        return None
    labs = set()
    for a in list(c.args) + list(c.kwargs.values()):
        labs |= labels(a)
    return ("fwd", labs) if is_val(norm(labs)) else None


def _registers_hook(v) -> bool:
    return any(x[0] == "c" and x[1].attr in HOOK_REGISTER for x in value_nodes(v))
