"""Parameter initialisation (`nn.init.*`, in-place `weight.normal_()` ...), framework-neutral.

What each torch init takes and whether it draws random numbers; the layouts (weight-table
transform names, rules/layers.toml `weights`) an init can be written through. The converted
init computes the values in torch's layout (so fans and `eye_`/`dirac_`/`copy_` mean what they
mean in torch) and writes them through the same transform the weight transfer uses.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..rules import load_rules

# torch.nn.init name -> (random?, torch's parameters after the tensor)
INIT_FUNCTIONS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "constant_": (False, ("val",)),
    "zeros_": (False, ()),
    "ones_": (False, ()),
    "eye_": (False, ()),
    "dirac_": (False, ("groups",)),
    "uniform_": (True, ("a", "b", "generator")),
    "normal_": (True, ("mean", "std", "generator")),
    "trunc_normal_": (True, ("mean", "std", "a", "b", "generator")),
    "xavier_uniform_": (True, ("gain", "generator")),
    "xavier_normal_": (True, ("gain", "generator")),
    "kaiming_uniform_": (True, ("a", "mode", "nonlinearity", "generator")),
    "kaiming_normal_": (True, ("a", "mode", "nonlinearity", "generator")),
    "orthogonal_": (True, ("gain", "generator")),
}

# in-place tensor method -> the torch.nn.init function that writes the same values
INPLACE_METHODS: dict[str, str] = {
    "normal_": "normal_",
    "uniform_": "uniform_",
    "zero_": "zeros_",
    "fill_": "constant_",
    "copy_": "copy_",
}
# the helper class a converted init calls (`torch_init.zeros(m.bias)`, `torch_init.value(m.kernel,
# ...)`): its first argument is a parameter already written or read as converted code does
INIT_HELPER = "torch_init"
# copy_ only exists as a method; it is deterministic and takes the source tensor
COPY = "copy_"

# weight-table transforms an init can be written through (their torch-layout shape is recoverable)
INIT_LAYOUTS = frozenset({"copy", "transpose", "conv", "conv_transpose"})

PARAMETER_LAYER = "torch.nn.Parameter"  # `self.p = nn.Parameter(...)`: the value itself, same layout


def is_random(kind: str) -> bool:
    return kind != COPY and INIT_FUNCTIONS[kind][0]


# a layer attribute whose construction this rewrite leaves in PyTorch (`self.q = nn.Linear(d, d,
# **kw)`: a TODO): its class in InitSite/InitRead.layers carries this prefix, and its inits and
# reads never go through the weight tables (core.decide says the layer itself is not converted)
KEPT_LAYER = "!"


def kept_layer_reason(layers: tuple[str, ...]) -> str | None:
    """Why an init or read of a layer that stays PyTorch is left (None: the layer converts)."""
    kept = sorted({q[len(KEPT_LAYER):].rpartition(".")[2] for q in layers if q.startswith(KEPT_LAYER)})
    if not kept:
        return None
    return (f"the layer itself ({', '.join(kept)}) is not converted (its construction is left as a "
            "TODO), so its parameters are still torch's; port the layer first")


@dataclass(frozen=True)
class InitSite:
    """An init of one parameter, as either front end sees it (facts from pt2jax_migrate.inits)."""

    kind: str  # a torch.nn.init name, or "copy_"
    method: bool  # written as an in-place tensor method (`m.weight.data.normal_(0, .02)`)
    layers: tuple[str, ...]  # torch classes the owning module may be (empty: unknown)
    attribute: str  # "weight", "bias", ... ("" for an nn.Parameter attribute itself)
    owner: str  # source text of the module (`m`, `self.fc`) or of the parameter
    key_available: bool  # a random key can be drawn here (a converted __init__ or init function)
    args: tuple[tuple[str, bool], ...] = ()  # after the tensor (source text, starred)
    kwargs: tuple[tuple[str | None, str], ...] = ()
    # the tensor is a new one built in place (`torch.empty(n).normal_()`): the init returns the
    # values (the converted creation call is its receiver), there is no parameter to write
    fresh: bool = False
    # the owner is a layer of a model instance built in the file (`model.fc`): that name
    instance: str = ""


@dataclass(frozen=True)
class InitRead:
    """A read of a parameter in an init function (`m.weight.numel()`, `m.weight.data.shape`):
    torch code means the torch tensor, so the converted read is the parameter in torch's layout."""

    owner: str  # `m`, `self.fc`
    layers: tuple[str, ...]
    attribute: str  # "weight", "bias", ...
    # read outside init code (forward, a training script's `model.bn.running_var`): a finding of
    # its own (core.decide.decide_layer_read); in an init function the init's findings cover it
    reported: bool = False
    # read in an `if` test (`if m.bias is not None:`): the parameter itself, not its value
    test: bool = False


@dataclass(frozen=True)
class InitTarget:
    """Where a fixable init writes: the converted parameter and the transform to it."""

    receiver: str  # `m.kernel`, `self.pos_embed`
    layout: str | tuple  # a weight-table transform name, or ((converted class, transform), ...)
    kind: str  # the torch.nn.init name (or "copy_") of the helper to call
    random: bool


@functools.lru_cache(maxsize=1)
def weight_read_patterns() -> tuple[re.Pattern, re.Pattern]:
    """The attributes the weight tables name (rules/layers.toml `weights`, every target's; a
    read of any other attribute of a converted layer needs no change): the cheap test before
    reading them, as `.name` and as an instance's `model.layer.name`. Built once, on first use,
    from the tables lint and rewrite load anyway."""
    names = {w["torch"] for rule in load_rules().entries for side in rule.sides.values()
             for w in side.get("weights") or ()}
    alternatives = sorted((re.escape(n[:-1]) + r"\w*" if n.endswith("*") else re.escape(n) for n in names),
                          key=lambda a: (-len(a), a))
    read = "(?:" + "|".join(alternatives) + r")\b"
    return re.compile(r"\." + read), re.compile(r"(?<![\w.])(?!self\.)[A-Za-z_]\w*\.\w+\." + read)


def layer_read(source: str) -> bool:
    """Whether `source` reads an attribute some weight table names (`.weight`, `.running_var`)."""
    return weight_read_patterns()[0].search(source) is not None


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # re's \w


def instance_read(source: str) -> bool:
    """`weight_read_patterns()[1].search(source)` (`model.fc.weight`: a chain of a name other than
    self, an attribute and a weight-table name), found as that pattern's `.weight` tails first and
    each one's head checked backwards: the pattern itself tries every word of the text."""
    for match in weight_read_patterns()[0].finditer(source):
        end = match.start()  # the `.` before the weight name; before it must be `X.Y`
        start = end
        while start > 0 and _word(source[start - 1]):
            start -= 1  # Y: the word before the dot
        if start == end or start < 2 or source[start - 1] != ".":
            continue
        head_end = start - 1
        head = head_end
        while head > 0 and _word(source[head - 1]):
            head -= 1  # X: a word starting with a letter or _, no word or `.` before it, not self
        if head == head_end or (head > 0 and source[head - 1] == ".") or not (
                source[head] == "_" or "a" <= source[head] <= "z" or "A" <= source[head] <= "Z"):
            continue
        if source[head:head_end] != "self":
            return True
    return False
