"""Helper code for Linen training programs (the target's rendering: training.py).

A torch model holds its weights; a Linen module does not. `model = Net(...)` becomes
`model = LinenModel(Net(...), jax.random.key(0))`: the module plus its variables ('params',
'batch_stats'), created by `module.init` on the model's first call (the first batch is the
example input: none is known when the model is built), applied with `module.apply`
(`train=` from model.train()/eval(), batch statistics updated in train mode, a fresh dropout key
per call). An optimizer is `LinenOptimizer(model, tx)`: the optax transformation and its
`opt_state = tx.init(params)`. A training step is a pure function of a `TrainState`
(flax.struct.dataclass: params, batch_stats, opt_state, the step's dropout key), jitted once by
`linen_train_step`, which also reads the state off and writes it back into the two handles.
Source text only (no imports here).
"""

from __future__ import annotations

from ..base import Helper

__all__ = ["TRAIN_HELPERS"]

_LINEN_MODEL = '''\
@jax.tree_util.register_pytree_node_class
class LinenModel:
    """A Linen module with its variables, used like the torch model it replaces: `model(x)` is
    `module.apply(variables, x, train=...)`. The variables come from `module.init(key, x)` on
    the first call (its inputs are the example input). train()/eval() set the mode; in train
    mode batch statistics are updated and each call draws a new dropout key."""

    def __init__(self, module, key, variables=None, training=True):
        self.module, self.key, self.variables, self.training = module, key, variables, training
        self.loaded = None  # a load_state_dict before the first call: checked at that call
        self.frozen = None  # the params paths freeze() stopped training (FrozenPaths)
        self.placement = None  # data_parallel: the variables' sharding (replicated)

    def tree_flatten(self):
        return (self.variables, self.key), (self.module, self.training)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], children[1], children[0], aux[1])

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def init(self, *args, **kwargs):
        if self.variables is None or self.loaded is not None:
            self.key, init_key = jax.random.split(self.key)
            train = self._train(False)
            self.variables = dict(self.module.init(init_key, *args, **kwargs, **train))
            for fn in self.__dict__.pop("pending", ()):
                self.update_variables(fn)
            if self.loaded is not None:
                loaded, self.loaded = self.loaded, None
                loaded(self)
            if self.placement is not None:
                self.variables = jax.device_put(self.variables, self.placement)
        return self.variables

    def update_variables(self, fn):
        """fn(bound module) writes the variables (torch code setting weights in place, as
        model.apply(init_fn)): run on them now, or once the first call has made them."""
        if self.variables is None:
            self.__dict__.setdefault("pending", []).append(fn)
            return self
        _, variables = self.module.apply(self.variables, method=fn, mutable=True)
        self.variables = dict(variables)
        return self

    def _train(self, train, method="__call__"):
        takes = "train" in inspect.signature(getattr(self.module, method)).parameters
        return {"train": train} if takes else {}

    def __getattr__(self, name):  # model.encode(x): the module's method, applied; model.body:
        if name.startswith("_"):  # a submodule (made in setup) as a view of its variables
            raise AttributeError(name)
        if not hasattr(self.module, name):
            return LinenSubmodule(self, (name,))
        if not callable(getattr(self.module, name)):
            return getattr(self.module, name)  # a field of the module
        return lambda *args, **kwargs: self(*args, method=name, **kwargs)

    def __call__(self, *args, method="__call__", **kwargs):
        if method == "__call__":
            self.init(*args, **kwargs)
        elif self.variables is None:
            raise ValueError(f"call the model before model.{method}: the first call makes its "
                             "variables")
        kwargs = {**kwargs, "method": method}
        if not self.training:
            return self.module.apply(self.variables, *args, **kwargs, **self._train(False, method))
        self.key, dropout_key = jax.random.split(self.key)
        mutable = [name for name in self.variables if name != "params"]
        train = self._train(True, method)
        out, updates = self.module.apply(self.variables, *args, **kwargs, **train,
                                         rngs={"dropout": dropout_key}, mutable=mutable)
        self.variables = {**self.variables, **updates}
        return out
'''

_LINEN_OPTIMIZER = '''\
class LinenOptimizer:
    """An optax transformation `tx` over a LinenModel's params: `opt_state = tx.init(params)`
    once the model has its variables. `opt_state` shows the state's arrays as slots
    (get_value/set_value) for the lr schedulers, which set the lr held in the state; one set
    before the model's first call is kept in a state over no params and carried over."""

    def __init__(self, model, tx):
        self.model, self.tx, self.state, self.early, self.loaded = model, tx, None, None, None

    def init(self):
        if self.state is None:
            if not hasattr(self.tx, "init"):  # parameter groups: they select among the params
                self.tx = self.tx(self.model)
            state = self.tx.init(self.model.variables["params"])
            if self.early is not None:
                held = iter([s for s in jax.tree.leaves(self.early, is_leaf=_injected)
                             if _injected(s)])
                def carry(s):
                    return s._replace(hyperparams=next(held).hyperparams) if _injected(s) else s
                state = jax.tree.map(carry, state, is_leaf=_injected)
            self.state = state
            if self.loaded is not None:  # a load_state_dict before the model had variables
                loaded, self.loaded = self.loaded, None
                loaded(self)
        return self.state

    def transformation(self):
        """tx, or with the model's frozen parameters given no gradient and no update."""
        frozen = self.model.frozen
        return self.tx if not frozen else frozen.transformation(self.tx)

    def current(self):
        if self.state is not None:
            return self.state
        if self.early is None:
            self.early = self.tx.init({})
        return self.early

    def replace(self, state):
        if self.state is not None:
            self.state = state
        else:
            self.early = state

    @property
    def opt_state(self):
        leaves, treedef = jax.tree_util.tree_flatten(self.current())
        return jax.tree.unflatten(treedef, [OptSlot(self, i) for i in range(len(leaves))])


def _injected(state):
    return hasattr(state, "hyperparams") and hasattr(state, "_replace")


class OptSlot:
    """One array of a LinenOptimizer's state, read and replaced in place."""

    def __init__(self, optimizer, index):
        self.optimizer, self.index = optimizer, index

    def get_value(self):
        return jax.tree.leaves(self.optimizer.current())[self.index]

    def set_value(self, value):
        leaves, treedef = jax.tree_util.tree_flatten(self.optimizer.current())
        leaves[self.index] = value
        self.optimizer.replace(jax.tree.unflatten(treedef, leaves))
'''

_TRAIN_STATE = '''\
@flax.struct.dataclass
class TrainState:
    """What a jitted Linen train step reads and returns: params, batch_stats, opt_state and
    the step's dropout key; the module, the optax transformation and the mode are static."""

    params: Any
    batch_stats: Any
    opt_state: Any
    dropout_key: Any
    module: Any = flax.struct.field(pytree_node=False)
    tx: Any = flax.struct.field(pytree_node=False)
    train: bool = flax.struct.field(pytree_node=False, default=True)

    def bind(self, params):
        """The module as the step's forward pass calls it: on `params`, batch statistics
        updated (mutable) in train mode, each call with its own dropout key."""
        return BoundModel(self, params)


class BoundModel:
    def __init__(self, state, params):
        self.state, self.params, self.batch_stats, self.calls = state, params, state.batch_stats, 0

    def __getattr__(self, name):  # model.encode(x) in the forward pass: the module's method
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self(*args, method=name, **kwargs)

    def __call__(self, *args, method="__call__", **kwargs):
        state, train = self.state, self.state.train
        variables = {"params": self.params}
        if self.batch_stats:
            variables["batch_stats"] = self.batch_stats
        if "train" in inspect.signature(getattr(state.module, method)).parameters:
            kwargs["train"] = train
        if not train:
            return state.module.apply(variables, *args, method=method, **kwargs)
        key = jax.random.fold_in(state.dropout_key, self.calls)
        self.calls += 1
        out, updates = state.module.apply(variables, *args, method=method, **kwargs,
                                          rngs={"dropout": key}, mutable=["batch_stats"])
        self.batch_stats = updates.get("batch_stats", self.batch_stats)
        return out

    @property
    def updates(self):
        return {"batch_stats": self.batch_stats}
'''

_LINEN_TRAIN_STEP = '''\
class _FirstInputs(Exception):
    pass


class _Probe:
    """Stands in for the TrainState on a model without variables: the step's forward pass runs
    up to the model's call, whose inputs are the example input of module.init."""

    params = None

    def bind(self, params):
        def call(*args, **kwargs):
            raise _FirstInputs(args, kwargs)
        return call


def linen_train_step(step):
    """jax.jit for a Linen training step `step(state, *args) -> (state, outputs)`, called as
    `step(model, optimizer, *args)` on the LinenModel and LinenOptimizer: the TrainState is
    read off them, the jitted step runs, and the new state is written back, so `model` and
    `optimizer` stay current between steps (each mode compiles once). A step that only
    computes gradients (accumulated over micro-batches) is given no optimizer (None)."""
    jitted = jax.jit(step)

    def call(model, optimizer, *args):
        # the first batch is the example input of module.init (which checks a loaded state)
        if model.variables is None or model.loaded is not None:
            try:
                step(_Probe(), *args)
            except _FirstInputs as first:
                model.init(*first.args[0], **first.args[1])
        opt_state, tx = None, None
        if optimizer is not None:
            opt_state, tx = optimizer.init(), optimizer.transformation()
        model.key, dropout_key = jax.random.split(model.key)
        state = TrainState(model.variables["params"], model.variables.get("batch_stats", {}),
                           opt_state, dropout_key, model.module, tx, model.training)
        state, out = jitted(state, *args)
        model.variables = {**model.variables, "params": state.params}
        if state.batch_stats:
            model.variables["batch_stats"] = state.batch_stats
        if optimizer is not None:
            optimizer.state = state.opt_state
        return out

    call.__name__, call.__wrapped__ = step.__name__, step
    return call
'''

_JAX = "import jax"
TRAIN_HELPERS = (
    Helper("LinenModel", _LINEN_MODEL, ("import inspect", _JAX), ("LinenSubmodule",)),
    Helper("LinenOptimizer", _LINEN_OPTIMIZER, (_JAX,)),
    Helper("TrainState", _TRAIN_STATE,
           ("import inspect", "from typing import Any", _JAX, "import flax")),
    Helper("linen_train_step", _LINEN_TRAIN_STEP, (_JAX,), ("TrainState",)),
)
