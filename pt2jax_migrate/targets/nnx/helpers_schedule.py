"""Helper code for learning-rate schedulers, written into converted files (source text only).

torch.optim.lr_scheduler.X(optimizer, ...) becomes the helper X(optimizer, ...) with the same
arguments. The optimizer it drives is built with `with_learning_rate(tx, lr)`: optax's
transformation (with its own learning rate 1.0) followed by a final factor, the learning rate,
held in the optimizer's state as an array -- torch applies lr as the last multiplier of every
update (after SGD's and RMSprop's momentum buffers), and a jitted train step reads the array, so
changing it never retraces.

Each scheduler runs on the host, as torch's does: it counts its own step() calls, computes the
next learning rate with torch's own (chainable) formulas in Python floats, keeps it in a
torch-like `param_groups(optimizer)` view and writes it into the state. The sequence is then
the one torch prints (same operations, same order), however step() is called: per batch, per
epoch or conditionally. The numbers are checked against torch in tests/test_schedulers.py.
"""

from __future__ import annotations

HYPERPARAM_SLOT = '''\
def hyperparam_slot(state, name):
    """The state array of an injected hyperparameter (optax.inject_hyperparams), searched last
    first: the learning-rate factor is the last transformation of the chain."""
    if hasattr(state, "hyperparams"):
        # torch's momentum is optax.trace's decay where the momentum buffer is its own step
        for key in (name, "decay") if name == "momentum" else (name,):
            if key in state.hyperparams:
                return state.hyperparams[key]
    if isinstance(state, (tuple, list)):
        for part in reversed(state):
            found = hyperparam_slot(part, name)
            if found is not None:
                return found
    if hasattr(state, "inner_state"):
        return hyperparam_slot(state.inner_state, name)
    return None
'''

PARAM_GROUP = '''\
class ParamGroup(dict):
    """A torch-like param group of a converted optimizer: 'lr' (and 'betas' or 'momentum' when
    the optimizer's are cycled) written here also go into the optimizer's state.

    The state is read back (a wait for the device) only when its array is not the one last seen
    here: a jitted step under jit_train_step leaves an lr it does not change as it is, so a
    scheduler stepping every batch reads and writes the lr without a sync."""

    SLOTS = {"lr": "step_size", "betas": "b1", "momentum": "momentum"}

    def __init__(self, optimizer, values):
        super().__init__(values)
        self.optimizer = optimizer
        self.seen = {}  # key -> (the state array last read or written here, the value it holds)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        slot = None
        if key in self.SLOTS:
            slot = hyperparam_slot(self.optimizer.opt_state, self.SLOTS[key])
        if slot is not None:  # the state is the truth: load_state_dict(optimizer, ...) restores it
            held = slot.get_value()
            seen = self.seen.get(key)
            if seen is not None and seen[0] is held:
                return seen[1]
            mine = value[0] if key == "betas" else value
            if float(jnp.asarray(mine, held.dtype)) != float(held):
                value = (float(held), value[1]) if key == "betas" else float(held)
                super().__setitem__(key, value)
            self.seen[key] = (held, value)
        return value

    def __setitem__(self, key, value):
        if key in self.SLOTS and key in self:
            slot = hyperparam_slot(self.optimizer.opt_state, self.SLOTS[key])
            if slot is None:
                raise KeyError(f"{key} is not a hyperparameter held in this optimizer's state")
            held = slot.get_value()
            seen = self.seen.get(key)
            if seen is None or seen[0] is not held or seen[1] != value:  # else: the state holds it
                value_now = value[0] if key == "betas" else value  # beta2 is not scheduled
                slot.set_value(jnp.asarray(value_now, held.dtype))
            self.seen[key] = (slot.get_value(), value)
        super().__setitem__(key, value)
'''

WITH_LEARNING_RATE = '''\
class with_learning_rate:
    """optax transformation `tx` (built with learning rate 1.0) times a learning rate held in the
    optimizer's state: torch multiplies every update by lr last, so a scheduler can change it
    between steps exactly, and a jitted train step reads the new value without retracing."""

    def __init__(self, tx, lr, **group):
        self.lr = lr
        self.group = {"lr": lr, **group}  # torch's param_groups[0], host side
        inner = optax.chain(tx, optax.inject_hyperparams(optax.scale)(step_size=lr))
        self.init, self.update = inner.init, inner.update
'''

PARAM_GROUPS = '''\
def param_groups(optimizer):
    """torch's `optimizer.param_groups` for an optimizer built with with_learning_rate."""
    tx = optimizer.tx
    if not isinstance(tx, with_learning_rate):
        raise TypeError("param_groups needs an optimizer built by with_learning_rate(tx, lr)")
    if not hasattr(tx, "param_groups"):
        group = dict(tx.group)
        names = ("b1", "b2", "momentum")
        slots = {name: hyperparam_slot(optimizer.opt_state, name) for name in names}
        if slots["b1"] is not None and "betas" not in group:  # what an injected optimizer holds
            b2 = float(slots["b2"].get_value()) if slots["b2"] is not None else 0.999
            group["betas"] = (float(slots["b1"].get_value()), b2)
        if slots["momentum"] is not None and "momentum" not in group:
            group["momentum"] = float(slots["momentum"].get_value())
        tx.param_groups = [ParamGroup(optimizer, group)]
    return tx.param_groups
'''

LR_SCHEDULER = '''\
class LRScheduler:
    """torch.optim.lr_scheduler.LRScheduler on a converted optimizer, run on the host as torch
    runs it: step() counts calls and sets the lr in param_groups(optimizer) (and its state)."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        groups = param_groups(optimizer)
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def _lrs(self):
        return [group["lr"] for group in param_groups(self.optimizer)]

    def get_last_lr(self):
        return self._last_lr

    def step(self, epoch=None):
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:  # torch's deprecated step(epoch): the closed form where there is one
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", self.get_lr)
            values = closed_form()
        groups = param_groups(self.optimizer)
        for group, lr in zip(groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]

    def state_dict(self):
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)
'''

# LambdaLR's and MultiplicativeLR's: one lr_lambda per parameter group (or one for all)
_LAMBDAS_INIT = '''\
    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.optimizer = optimizer
        count = len(param_groups(optimizer))
        several = isinstance(lr_lambda, (list, tuple))
        self.lr_lambdas = list(lr_lambda) if several else [lr_lambda] * count
        super().__init__(optimizer, last_epoch)
'''

# name -> (source, requires); each scheduler's get_lr is torch's, operation for operation
SCHEDULERS = {
    "LambdaLR": ('''\
class LambdaLR(LRScheduler):
    """torch.optim.lr_scheduler.LambdaLR: lr = initial lr * lr_lambda(epoch)."""

''' + _LAMBDAS_INIT + '''\

    def get_lr(self):
        return [base_lr * lmbda(self.last_epoch)
                for lmbda, base_lr in zip(self.lr_lambdas, self.base_lrs)]
''', ()),
    "MultiplicativeLR": ('''\
class MultiplicativeLR(LRScheduler):
    """torch.optim.lr_scheduler.MultiplicativeLR: lr *= lr_lambda(epoch) at each step."""

''' + _LAMBDAS_INIT + '''\

    def get_lr(self):
        if self._is_initial:
            return self._lrs()
        return [lr * lmbda(self.last_epoch) for lmbda, lr in zip(self.lr_lambdas, self._lrs())]
''', ()),
    "StepLR": ('''\
class StepLR(LRScheduler):
    """torch.optim.lr_scheduler.StepLR: lr *= gamma every step_size steps."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size)
                for base_lr in self.base_lrs]
''', ()),
    "MultiStepLR": ('''\
class MultiStepLR(LRScheduler):
    """torch.optim.lr_scheduler.MultiStepLR: lr *= gamma at each milestone."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = {}
        for milestone in milestones:  # a milestone listed twice decays twice, as in torch
            self.milestones[milestone] = self.milestones.get(milestone, 0) + 1
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._lrs()]

    def _get_closed_form_lr(self):
        passed = sum(count for milestone, count in self.milestones.items()
                     if milestone <= self.last_epoch)
        return [base_lr * self.gamma ** passed for base_lr in self.base_lrs]
''', ()),
    "ConstantLR": ('''\
class ConstantLR(LRScheduler):
    """torch.optim.lr_scheduler.ConstantLR: lr * factor until total_iters."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if factor > 1.0 or factor < 0:
            raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
        self.factor = factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._lrs()]
        if self.last_epoch != self.total_iters:
            return self._lrs()
        return [lr * (1.0 / self.factor) for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]
''', ()),
    "LinearLR": ('''\
class LinearLR(LRScheduler):
    """torch.optim.lr_scheduler.LinearLR: lr goes linearly from start_factor to end_factor times
    the initial lr over total_iters steps."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5,
                 last_epoch=-1):
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 "
                             "and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._lrs()]
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lrs()
        change = self.end_factor - self.start_factor
        return [lr * (1.0 + change / (self.total_iters * self.start_factor
                                      + (self.last_epoch - 1) * change))
                for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor)
                           * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]
''', ()),
    "ExponentialLR": ('''\
class ExponentialLR(LRScheduler):
    """torch.optim.lr_scheduler.ExponentialLR: lr *= gamma at every step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]
''', ()),
    "PolynomialLR": ('''\
class PolynomialLR(LRScheduler):
    """torch.optim.lr_scheduler.PolynomialLR: lr decays as (1 - t / total_iters) ** power."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters = total_iters
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial or self.last_epoch > self.total_iters:
            return self._lrs()
        decay_factor = ((1.0 - self.last_epoch / self.total_iters)
                        / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
        return [lr * decay_factor for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base_lr in self.base_lrs]
''', ()),
    "CosineAnnealingLR": ('''\
class CosineAnnealingLR(LRScheduler):
    """torch.optim.lr_scheduler.CosineAnnealingLR (torch's recursive form, as torch has it)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._lrs()
        if self._step_count == 1 and self.last_epoch > 0:
            return [self.eta_min + (base_lr - self.eta_min)
                    * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
                    for base_lr in self.base_lrs]
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return [lr + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                    for base_lr, lr in zip(self.base_lrs, self._lrs())]
        return [(1 + math.cos(math.pi * self.last_epoch / self.T_max))
                / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                * (lr - self.eta_min) + self.eta_min
                for lr in self._lrs()]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]
''', ()),
    "CosineAnnealingWarmRestarts": ('''\
class CosineAnnealingWarmRestarts(LRScheduler):
    """torch.optim.lr_scheduler.CosineAnnealingWarmRestarts (SGDR)."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base_lr - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for base_lr in self.base_lrs]

    def step(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        groups = param_groups(self.optimizer)
        for group, lr in zip(groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]
''', ()),
    "OneCycleLR": ('''\
class OneCycleLR(LRScheduler):
    """torch.optim.lr_scheduler.OneCycleLR; with cycle_momentum (the default) it also cycles the
    optimizer's momentum (SGD, RMSprop) or beta1 (Adam), held in its state like the lr."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        self.optimizer = optimizer
        groups = param_groups(optimizer)
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        # (end step, start lr, end lr, start momentum, end momentum) per phase
        up = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                 "base_momentum", "max_momentum"),
                (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                (up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', not {anneal_strategy}")
        self._anneal_func_type = anneal_strategy
        max_lrs = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if last_epoch == -1:
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in groups[0] and "betas" not in groups[0]:
                raise ValueError("cycle_momentum needs an optimizer with momentum or betas")
            self.use_beta1 = "betas" in groups[0]
            if last_epoch == -1:
                for group in groups:
                    if self.use_beta1:
                        group["betas"] = (max_momentum, *group["betas"][1:])
                    else:
                        group["momentum"] = max_momentum
                    group["max_momentum"] = max_momentum
                    group["base_momentum"] = base_momentum
        super().__init__(optimizer, last_epoch)

    def _anneal_func(self, start, end, pct):
        if self._anneal_func_type == "cos":
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
        return (end - start) * pct + start

    def get_lr(self):
        lrs = []
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"Tried to step {step_num} times. "
                             f"The specified number of total steps is {self.total_steps}")
        for group in param_groups(self.optimizer):
            start_step = 0.0
            phases = self._schedule_phases
            for i, (end_step, start_lr, end_lr, start_momentum, end_momentum) in enumerate(phases):
                if step_num <= end_step or i == len(self._schedule_phases) - 1:
                    pct = (step_num - start_step) / (end_step - start_step)
                    computed_lr = self._anneal_func(group[start_lr], group[end_lr], pct)
                    if self.cycle_momentum:
                        computed_momentum = self._anneal_func(
                            group[start_momentum], group[end_momentum], pct)
                    break
                start_step = end_step
            lrs.append(computed_lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (computed_momentum, *group["betas"][1:])
                else:
                    group["momentum"] = computed_momentum
        return lrs
''', ()),
    "SequentialLR": ('''\
class SequentialLR(LRScheduler):
    """torch.optim.lr_scheduler.SequentialLR: one scheduler after another at the milestones."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError("SequentialLR expects one more scheduler than milestones")
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in param_groups(optimizer):
            group["lr"] = group["initial_lr"]
        self._undo(self)
        idx = sum(1 for milestone in self._milestones if milestone <= 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = schedulers[idx].get_last_lr()

    def _undo(self, sched):
        if hasattr(sched, "_schedulers"):
            for inner in sched._schedulers:
                self._undo(inner)
        elif hasattr(sched, "last_epoch"):
            sched.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        idx = sum(1 for milestone in self._milestones if milestone <= self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()
''', ()),
    "ChainedScheduler": ('''\
class ChainedScheduler(LRScheduler):
    """torch.optim.lr_scheduler.ChainedScheduler: every scheduler steps, in order."""

    def __init__(self, schedulers, optimizer=None):
        self._schedulers = schedulers
        self.optimizer = optimizer or schedulers[0].optimizer
        self._last_lr = self._lrs()

    def step(self):
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = self._lrs()
''', ()),
    "ReduceLROnPlateau": ('''\
class ReduceLROnPlateau(LRScheduler):
    """torch.optim.lr_scheduler.ReduceLROnPlateau: step(metric) on the host, as torch does."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        if mode not in ("min", "max"):
            raise ValueError("mode " + mode + " is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError("threshold mode " + threshold_mode + " is unknown!")
        self.factor = factor
        self.optimizer = optimizer
        count = len(param_groups(optimizer))
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * count
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = self._lrs()
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics, epoch=None):
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(param_groups(self.optimizer), self.min_lrs):
                old_lr = float(group["lr"])
                new_lr = max(old_lr * self.factor, min_lr)
                if old_lr - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _is_better(self, a, best):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold
''', ()),
}

# helper name -> (source, imports, requires); helpers.py turns these into Helper entries
_BASE = {
    "hyperparam_slot": (HYPERPARAM_SLOT, (), ()),
    "ParamGroup": (PARAM_GROUP, ["import jax.numpy as jnp"], ("hyperparam_slot",)),
    "with_learning_rate": (WITH_LEARNING_RATE, ["import optax"], ()),
    "param_groups": (PARAM_GROUPS, [], ("hyperparam_slot", "ParamGroup", "with_learning_rate")),
    "LRScheduler": (LR_SCHEDULER, [], ("param_groups",)),
}
SCHEDULE_HELPERS = {
    **_BASE,
    **{name: (source, ["import math"] if "math." in source else [],
              ("LRScheduler", *(("param_groups",) if "param_groups(" in source else ())))
       for name, (source, _) in SCHEDULERS.items()},
}
