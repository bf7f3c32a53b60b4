"""The two sides of a model verify: what runs with torch and what runs with the target (JAX).

Each side loads its file's slice, builds its model and runs it; everything it hands back is
numpy arrays and plain data, so it can live in its own process (verify/isolate.py runs one
long-lived child per side and calls these methods over a pipe) or in the caller's process
(the library default). engine.run_verify drives both the same way:

    torch.build -> description + values      jax.build
    jax.plan(description, values) -> entries (+ the perturbed torch values)
    torch.run(perturbed values) -> outputs, gradients, want_grads
    jax.run(want_grads) -> outputs, gradients, and the same under jit

A VerifyError raised here names the user's file and line (building._where).
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import numpy as np

from .compare import flatten_output
from .report import VerifyError


class _Side:
    def __init__(self) -> None:
        self.stack = ExitStack()
        self.timings: dict[str, float] = {}

    def reset(self) -> None:
        """Unload the file and drop the model (before a float64 rerun, and at the end)."""
        self.stack.close()
        self.stack = ExitStack()

    def timed(self, name: str, start: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start

    def take_timings(self) -> dict[str, float]:
        out, self.timings = self.timings, {}
        return out


class TrainSide(_Side):
    """`verify --train` whole (it steps both frameworks side by side, so one process holds both:
    verify/isolate.py runs it in a child for --timeout, --memory-limit and crash reports)."""

    paths: tuple[str, ...] = ()

    def run(self, original: str, converted: str, **options):
        from .train import run_train_verify

        start = time.perf_counter()
        self.paths = (original, converted)
        try:
            return run_train_verify(original, converted, **options)
        finally:
            self.timed("train", start)


class TorchSide(_Side):
    def build(self, original: str, model: str, init: str, seed: int, roots: set[str], *, float64: bool,
              weights: str | None, weights_prefix: tuple):
        """Build MODEL(INIT) under torch.manual_seed(seed) (and load `weights`): (the module
        tree as torchtree data, {key: numpy value})."""
        import torch

        from .building import _build, _loaded
        from .torchtree import describe_torch, tensor_values

        start = time.perf_counter()
        self.reset()
        self.path, self.model_name = original, model
        self.file = self.stack.enter_context(_loaded(original, roots, "torch"))
        torch.manual_seed(seed)
        built = _build(self.file, model, init)
        if not isinstance(built, torch.nn.Module):
            raise VerifyError(f"{original}: {model}({init}) is a {type(built).__name__}, not a torch.nn.Module")
        if float64:
            built = built.double()
        if weights:
            from .checkpoint import load_into_torch

            load_into_torch(weights, built, weights_prefix)
        self.torch_model = built
        self.modules, self.live = describe_torch(built)
        self.timed("torch build", start)
        return self.modules, tensor_values(self.live, self.modules)

    def run(self, values: dict[str, np.ndarray] | None, arrays: list[np.ndarray], loss: str | None):
        """Load `values` (the perturbed weights, by key), run forward and backward in eval mode:
        {"outputs": [(name, array)], "grads": [(key, tensor id, grad or None, shape)],
        "want_grads": bool}."""
        import torch

        from .building import _torch_loss, _where

        start = time.perf_counter()
        keyed = {t.key: self.live[t.tid] for m in self.modules for t in m.tensors}
        with torch.no_grad():
            for key, value in (values or {}).items():
                tensor = keyed[key]
                tensor.copy_(torch.from_numpy(value).to(dtype=tensor.dtype, device=tensor.device))
        torch_model = self.torch_model
        torch_model.eval()
        device = next((p.device for p in torch_model.parameters()), torch.device("cpu"))
        inputs = [torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays]
        with torch.enable_grad():
            try:
                out = torch_model(*inputs)
            except Exception as exc:
                raise VerifyError(f"{_where(self.path, exc)}: running {self.model_name} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
            leaves = flatten_output(out)
            float_leaves = [(n, t) for n, t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]
            params = [(k, p) for k, p in torch_model.named_parameters() if p.requires_grad]
            t_loss = _torch_loss(self.file, loss, out, float_leaves, self.path)
            want_grads = bool(params) and t_loss is not None and t_loss.requires_grad
            if want_grads:
                if t_loss.numel() != 1:
                    raise VerifyError(f"{self.path}: the loss must be a scalar, got shape {tuple(t_loss.shape)}")
                t_loss.backward()
        outputs = [(n, _numpy(t)) for n, t in leaves]
        grads = [(k, id(p), None if p.grad is None else _numpy(p.grad), tuple(p.shape)) for k, p in params]
        self.timed("torch run", start)
        return {"outputs": outputs, "grads": grads if want_grads else [], "want_grads": want_grads}


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy().copy()
    return np.asarray(value)


class JaxSide(_Side):
    def build(self, converted: str, model: str, init: str, seed: int, roots: set[str], *, float64: bool,
              target_name: str | None, arrays: list[np.ndarray]) -> None:
        """Build the converted MODEL(INIT, rngs=...) (Linen: its variables from model.init on
        the inputs) with float64 enabled for this run when asked."""
        import jax.numpy as jnp

        from ..targets import get_target
        from .building import _jax_x64, _loaded, _where, build_converted

        start = time.perf_counter()
        self.reset()
        self.path, self.model_name = converted, model
        self.target = target = get_target(target_name)
        self.stack.enter_context(_jax_x64(float64))
        self.float64 = float64
        self.file = self.stack.enter_context(_loaded(converted, roots, target.name))
        self.inputs = [jnp.asarray(a.astype(np.int32) if a.dtype == np.int64 else a) for a in arrays]
        # plan/apply_transfer overwrite every parameter and batch statistic, so the initial values
        # are throwaway ones, drawn with the PRNG that compiles fastest (targets/throwaway.py)
        built = build_converted(self.file, converted, model, init, seed, target, throwaway=True)
        try:
            built = target.materialize(built, self.inputs, seed, throwaway=True)
        except Exception as exc:
            raise VerifyError(f"{_where(converted, exc)}: initialising {model} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        self.nnx_model = built
        self.timed("jax build", start)

    def plan(self, modules, values: dict[str, np.ndarray], *, weights_map, perturb: bool, seed: int):
        """Plan the transfer from the torch description, perturb the torch values (seeded) when
        asked and write them into the converted model: (entries without live tensors, the
        perturbed torch values by key or None, how many were written)."""
        from .transfer import apply_transfer, perturb_values, plan_transfer

        start = time.perf_counter()
        try:
            entries = plan_transfer(modules, self.nnx_model, target=self.target, weights_map=weights_map)
        except VerifyError as exc:
            raise VerifyError(f"{self.path}: {exc}") from exc
        changed = None
        if perturb:
            changed = perturb_values(entries, values, seed)
            values = {**values, **changed}
        transferred = apply_transfer(entries, self.nnx_model, dtype="float64" if self.float64 else None,
                                     target=self.target, values=values)
        self.target.eval_mode(self.nnx_model)
        self.timed("jax transfer", start)
        return entries, changed, len(transferred)

    def run(self, want_grads: bool, loss: str | None, jit: bool):
        """Eager forward (and value_and_grad when torch has gradients), then the same under the
        target's jit: {"outputs", "grads", "jit_outputs", "jit_grads", "jit", "jit_error"}."""
        import jax
        import jax.numpy as jnp

        from .building import _jax_loss, _where

        target, model, inputs, path = self.target, self.nnx_model, self.inputs, self.path

        def run_jax(m, *xs):
            out = m(*(xs or inputs))
            if not want_grads:
                return jnp.zeros(()), out
            return _jax_loss(self.file, loss, out, path), out

        # The jit run (its own copy of the model) is traced and compiled in a second thread while
        # the eager run compiles its ops one by one: XLA compiles without holding the GIL.
        jit_run = _Background(_run_jit, target, run_jax, target.detached(model), inputs, want_grads,
                              path) if jit else None
        start = time.perf_counter()
        try:
            with jax.default_matmul_precision("highest"):
                if want_grads:
                    (_, out), grads = target.value_and_grad(run_jax, model)
                else:
                    _, out = run_jax(model)
                    grads = None
        except VerifyError:
            raise
        except Exception as exc:
            raise VerifyError(f"{_where(path, exc)}: running {self.model_name} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.timed("jax eager", start)
            if jit_run is not None:  # what it raised is raised below, after the eager run's errors
                jit_run.wait()
        result = {"outputs": _leaves(out), "grads": _flat(grads), "jit": False, "jit_error": None,
                  "jit_outputs": None, "jit_grads": None}
        if jit_run is None:
            return result
        self.timings["jax jit (compile and run, alongside eager)"] = jit_run.seconds
        try:
            result.update(jit_run.result())
        except NotImplementedError:
            result["jit"] = False  # the target has no jit: nothing to check
        return result


class _Background:
    """fn(*args) in a thread; wait() for it, then result(): what it returned, or raise what it raised."""

    def __init__(self, fn, *args) -> None:
        self.seconds, self._outcome = 0.0, (False, None)
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="pt2jax-verify-jit",
                                        daemon=True)
        self._thread.start()

    def _run(self, fn, args) -> None:
        start = time.perf_counter()
        try:
            self._outcome = (True, fn(*args))
        except BaseException as exc:
            self._outcome = (False, exc)
        self.seconds = time.perf_counter() - start

    def wait(self) -> None:
        self._thread.join()

    def result(self):
        self._thread.join()
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def _run_jit(target, run_jax, model, inputs, want_grads: bool, path: str) -> dict:
    """The model under the target's jit, the inputs traced as arguments (as in a jitted train
    step). With gradients, one compiled value_and_grad gives the outputs (its aux) and the
    gradients; only when it fails is the forward pass compiled alone, to say which failed."""
    import jax

    from .building import jit_failure

    def forward(m, *xs):
        return m(*xs)

    out = {"jit": True}
    with jax.default_matmul_precision("highest"):
        try:
            if want_grads:
                (_, jit_out), jit_grads = target.jit_value_and_grad(run_jax, model, *inputs)
                return {**out, "jit_outputs": _leaves(jit_out), "jit_grads": _flat(jit_grads)}
            return {**out, "jit_outputs": _leaves(target.jit_call(forward, model, *inputs))}
        except (NotImplementedError, VerifyError):
            raise
        except Exception as exc:
            failure = exc
        if want_grads:
            try:
                jit_out = target.jit_call(forward, model, *inputs)
            except (NotImplementedError, VerifyError):
                raise
            except Exception as exc:
                return {**out, "jit_error": jit_failure("forward", path, exc)}
            return {**out, "jit_outputs": _leaves(jit_out), "jit_error": jit_failure("gradient", path, failure)}
        return {**out, "jit_error": jit_failure("forward", path, failure)}


def _leaves(out) -> list[tuple[str, np.ndarray]]:
    return [(name, np.asarray(leaf)) for name, leaf in flatten_output(out)]


def _flat(grads) -> dict[tuple, np.ndarray] | None:
    return None if grads is None else {path: np.asarray(g) for path, g in grads.items()}
