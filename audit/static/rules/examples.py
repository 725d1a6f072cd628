"""Building blocks for the rules' VALID/INVALID example programs.

Most examples are the same evaluation with one thing changed: a loop over validation chunks
that scores each one under no_grad and prints the reported number. `scored_chunks` writes that
loop around the lines that differ; `marked` turns a program with a `# <-` comment on the line
where the finding must land into the `(source, line)` pair the tests check.
"""
from __future__ import annotations

import textwrap

VAL_HEAD = ('import torch\nimport torch.nn.functional as F\n'
            'val_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n')


def scored_chunks(inner: str, params: str = "model", call: str = "main(m)", setup: str = "",
                  no_grad: bool = True) -> str:
    """A program whose `main` scores validation chunks of 100 tokens (`x`, `y`) with `inner`
    (statements that add to `nll_sum`), then prints `val_loss`."""
    body = textwrap.indent(textwrap.dedent(inner).strip("\n"), " " * (12 if no_grad else 8))
    guard = "        with torch.no_grad():\n" if no_grad else ""
    pre = textwrap.indent(textwrap.dedent(setup).strip("\n"), "    ") + "\n" if setup else ""
    return (VAL_HEAD + f"def main({params}):\n" + pre + "    nll_sum = 0.0\n"
            "    for i in range(0, 1000, 100):\n"
            "        chunk = val_tokens[i:i + 101]\n"
            "        x, y = chunk[:-1], chunk[1:]\n" + guard + body + "\n"
            '    print(f"final val_loss:{nll_sum}")\n' + call + "\n")


def marked(src: str) -> tuple[str, int]:
    """(source, line of the `# <-` marker): where an INVALID example's finding must land."""
    for no, line in enumerate(src.splitlines(), 1):
        if "# <-" in line:
            return src, no
    raise ValueError("example has no `# <-` marker")
