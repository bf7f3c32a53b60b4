"""What a target (the JAX API the converted code is written against) decides.

The front ends decide *whether* a torch construct converts (core, the rules tables' source side);
a Target decides *how it is written*: the module base class, how a module receives randomness,
the text of a layer with parameters, of an optimizer and of a jitted training step, the helper
definitions and imports the converted code may use, and, for verify, where a torch tensor lands
in the converted model and how that model is built and run.

Text methods never import jax/flax (lint and rewrite must not); the runtime methods (verify
only) import them lazily. Adding a target is a new folder beside nnx/ that subclasses Target,
plus `[x.<table>]` sub-tables in rules/*.toml.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Helper", "Target", "closure_of"]


@dataclass(frozen=True)
class Helper:
    """A definition written into a converted file (once per file) where a PyTorch behaviour
    has no one-call equivalent: converted code never imports pt2jax."""

    name: str  # the top-level name the snippet defines
    source: str  # the code (no imports), ending with a newline
    imports: tuple[str, ...]  # import lines it needs
    requires: tuple[str, ...] = ()  # other helpers it uses


def closure_of(helpers: Mapping[str, Helper], names: Iterable[str]) -> list[Helper]:
    """The named helpers plus everything they require, in `helpers`' order (dependencies first).
    Raises KeyError for an unknown name."""
    wanted: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        if name not in helpers:
            raise KeyError(f"unknown helper {name!r}; known: {', '.join(helpers)}")
        wanted.add(name)
        pending.extend(helpers[name].requires)
    return [h for h in helpers.values() if h.name in wanted]


class Target(ABC):
    """One JAX API the rewrite can write. Subclasses set the class attributes and implement
    the abstract methods; the defaults here hold for any target that is not special."""

    name: ClassVar[str]  # what --target / [tool.pt2jax] target say
    table: ClassVar[str]  # the sub-table the rules tables keep for it ([layer.<table>])
    module_base: ClassVar[str]  # base class of a converted nn.Module, e.g. "nnx.Module"
    parameter_class: ClassVar[str]  # what nn.Parameter(x) becomes, e.g. "nnx.Param"
    sequential_class: ClassVar[str]  # what nn.Sequential becomes
    module_list_class: ClassVar[str]  # what nn.ModuleList becomes
    module_dict_class: ClassVar[str | None] = None  # what nn.ModuleDict becomes (None: not converted)
    rngs_name: ClassVar[str]  # the parameter/variable that carries randomness ("rngs")
    # names the converted code may use -> the import line binding each (stdlib first)
    converted_imports: ClassVar[dict[str, str]]
    helpers: ClassVar[dict[str, Helper]]  # the helper definitions it can emit, dependencies first
    import_order: ClassVar[tuple[str, ...]]  # the only import lines helpers may ask for, in order
    # what a loss's backward() becomes, for the rewrite's messages ("nnx.value_and_grad in @nnx.jit")
    gradient_step: ClassVar[str]

    # ---------------------------------------------------------------- randomness and parameters

    @abstractmethod
    def rngs_expr(self, seed: str = "0") -> str:
        """A fresh source of randomness seeded with `seed` (`nnx.Rngs(0)`)."""

    @abstractmethod
    def init_param(self) -> str:
        """The parameter a converted `__init__` gains (`*, rngs: nnx.Rngs`)."""

    def instantiate_keyword(self, rngs: str | None = None) -> str:
        """The keyword that builds a converted module (`rngs=nnx.Rngs(0)`)."""
        return f"{self.rngs_name}={rngs or self.rngs_expr()}"

    def seed_statement(self, seed: str) -> str:
        """What `torch.manual_seed(seed)` becomes (`rngs = nnx.Rngs(seed)`)."""
        return f"{self.rngs_name} = {self.rngs_expr(seed)}"

    def unseeded_statement(self) -> str:
        """Inserted where random sampling has no source of randomness in scope."""
        return (f"{self.seed_statement('0')}  # pt2jax: JAX needs explicit keys "
                "(torch drew from its global generator)")

    @abstractmethod
    def key_expr(self, rngs: str) -> str:
        """A fresh PRNG key drawn from the randomness `rngs` (`rngs()`)."""

    # ---------------------------------------------------------------- layers and optimizers

    @abstractmethod
    def render_layer(self, callable_: str, arguments: list[str], rngs: str) -> str:
        """A layer with parameters built from its (already mapped) arguments."""

    # module structure (core.structure): each returns (statement text, helpers it needs), or
    # None when this target does not convert the construct (the rewrite then leaves a TODO)
    def render_buffer(self, attribute: str, value: str) -> tuple[str, set[str]] | None:
        """`self.register_buffer("name", value)`: `attribute` is `self.name`."""
        return None

    def render_buffer_update(self, attribute: str, op: str, value: str) -> tuple[str, set[str]] | None:
        """`self.name += value` (op `+=`; `=` outside __init__) on a registered buffer."""
        return None

    def render_weight_tie(self, head: str, embedding: str) -> tuple[str, set[str]] | None:
        """`head.weight = embedding.weight` (a Linear tied to an Embedding)."""
        return None

    def render_index_update(self, name: str, index: str, method: str, value: str) -> tuple[str, set[str]] | None:
        """`name[index] op= value` on a local array; `method` is the jax `.at[]` method (set, add, ...)."""
        return f"{name} = {name}.at{index}.{method}({value})", set()

    def render_parameter(self, value: str) -> str:
        """What `nn.Parameter(value)` becomes."""
        return f"{self.parameter_class}({value})"

    @abstractmethod
    def render_optimizer(self, model: str, transformation: str) -> str:
        """The optimizer state for `model` driven by an optax `transformation`."""

    # ---------------------------------------------------------------- training step

    @abstractmethod
    def train_step(self, *, name: str, loss_fn: str, model: str, optimizer: str, params: list[str],
                   body: str, loss: str, aux: list[str]) -> str:
        """The jitted training step's definition. `body` is the forward pass (indented for the
        loss function's body); `aux` are values besides the loss that code after the step reads."""

    def train_step_call(self, *, name: str, model: str, optimizer: str, args: list[str], loss: str,
                        aux: list[str]) -> str:
        """The statement that replaces the torch step, calling `train_step`."""
        targets = ", ".join([loss, *aux])
        return f"{targets} = {name}({', '.join([model, optimizer, *args])})\n"

    # ---------------------------------------------------------------- helpers and imports

    def helper_closure(self, names: Iterable[str]) -> list[Helper]:
        return closure_of(self.helpers, names)

    def helper_imports(self, helpers: Iterable[Helper]) -> list[str]:
        needed = {line for h in helpers for line in h.imports}
        return [line for line in self.import_order if line in needed]

    # ---------------------------------------------------------------- verify: weight paths

    def child_path(self, prefix: tuple, container: str | None, part: str, index: int) -> tuple:
        """The converted model's path of a torch submodule. container: the torch parent's kind
        ("sequential", "list", "dict" or None for a plain module); part: the attribute name
        torch gives the child; index: its position in the parent."""
        if container == "list":
            return (*prefix, int(part))
        return (*prefix, part)

    def weight_path(self, prefix: tuple, to: str) -> tuple:
        """The converted model's path of a tensor mapped to `to` (a table's `weights.to`, or the
        name of a user-defined module's own parameter/buffer) in the module at `prefix`."""
        return (*prefix, *to.split("."))

    # ---------------------------------------------------------------- verify: runtime (lazy imports)

    @abstractmethod
    def build_keyword(self, seed: int) -> tuple[str, Any, str]:
        """(keyword, value, text) verify adds to the converted constructor's call, e.g.
        ("rngs", nnx.Rngs(0), "rngs=nnx.Rngs(0)")."""

    @abstractmethod
    def is_model(self, obj: Any) -> bool:
        """Whether `obj` is a converted model (an nnx.Module)."""

    @abstractmethod
    def variables(self, model: Any) -> dict[tuple, Any]:
        """path -> variable, every variable of the converted model."""

    @abstractmethod
    def is_trainable(self, variable: Any) -> bool:
        """A variable an optimizer trains (nnx.Param)."""

    @abstractmethod
    def must_be_written(self, variable: Any) -> bool:
        """A variable verify must fill from torch (parameters and batch statistics)."""

    @abstractmethod
    def set_value(self, variable: Any, value: Any) -> None:
        """Replace a variable's array (and dtype)."""

    @abstractmethod
    def eval_mode(self, model: Any) -> None:
        """Put the converted model in inference mode (dropout off, running statistics)."""

    @abstractmethod
    def value_and_grad(self, fn: Callable, model: Any) -> tuple[Any, dict[tuple, Any]]:
        """(fn(model)'s value, path -> gradient array of each trainable variable)."""

    # Optional: a target without a compiler leaves these unimplemented and verify skips the jit check.
    def jit_call(self, fn: Callable, model: Any, *args: Any) -> Any:
        """fn(model, *args) compiled the way converted code runs (for NNX: under nnx.jit), the
        arguments traced."""
        raise NotImplementedError

    def jit_value_and_grad(self, fn: Callable, model: Any, *args: Any) -> tuple[Any, dict[tuple, Any]]:
        """value_and_grad of fn(model, *args) with respect to the model, compiled (for NNX:
        nnx.value_and_grad inside nnx.jit)."""
        raise NotImplementedError
