"""What both verify commands share to load, build and run one side's model (the torch original
or the converted model): the file's slice, NAME(ARGS) built with the user's line named when it
fails, the loss, and a failure under jit located in the converted file. engine.py and sides.py
(model verify), train.py and weights.py use these.
"""

from __future__ import annotations

import ast
import keyword
from contextlib import contextmanager

from .loader import LoadedFile, load_slice, parse_source, read_source
from .report import JitFailure, VerifyError
from .compare import flatten_output


def detect_target(converted: str) -> str | None:
    """The target a converted file was written for (targets.target_of_text), else None (the default)."""
    from ..targets import target_of_text

    try:
        text = read_source(converted)
    except Exception:
        return None
    return target_of_text(text)


def _check_model_name(model: str) -> None:
    parts = (model or "").split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise VerifyError(f"--model {model!r} is not a class or function name")


def build_models(torch_file, jax_file, original: str, model: str, init: str, seed: int, target, *,
                 throwaway: bool = False):
    """NAME(ARGS) from each loaded file: torch's under torch.manual_seed(seed), the converted one
    with the target's build keyword (rngs) when its constructor takes it (`throwaway`: its
    initial values will be overwritten, Target.build_keyword)."""
    import torch

    torch.manual_seed(seed)
    torch_model = _build(torch_file, model, init)
    if not isinstance(torch_model, torch.nn.Module):
        raise VerifyError(f"{original}: {model}({init}) is a {type(torch_model).__name__}, not a torch.nn.Module")
    keyword, value, shown = target.build_keyword(seed, throwaway=throwaway)
    if keyword and _accepts_keyword(_lookup(jax_file, model), keyword):
        converted = _build(jax_file, model, init, f"{keyword}=__pt2jax_rngs__", {"__pt2jax_rngs__": value}, shown)
    else:  # e.g. a parameter-free module without __init__: the rewrite adds no rngs there
        converted = _build(jax_file, model, init)
    return torch_model, converted


def build_converted(jax_file, converted: str, model: str, init: str, seed: int, target, *,
                    throwaway: bool = False):
    """NAME(ARGS, rngs=...) from the loaded converted file, checked to be the target's model
    (`throwaway`: its initial values will be overwritten, Target.build_keyword)."""
    keyword, value, shown = target.build_keyword(seed, throwaway=throwaway)
    if keyword and _accepts_keyword(_lookup(jax_file, model), keyword):
        def make(value):
            return _build(jax_file, model, init, f"{keyword}=__pt2jax_rngs__", {"__pt2jax_rngs__": value}, shown)

        built = target.build_compiled(make, value) if throwaway else None
        if built is None:  # eagerly, with keys the compiled attempt did not draw from
            built = make(target.build_keyword(seed, throwaway=True)[1] if throwaway else value)
    else:
        built = _build(jax_file, model, init)
    if not target.is_model(built):
        raise VerifyError(f"{converted}: {model}({init}) is a {type(built).__name__}, not an {target.module_base}")
    return built


def build_transferred(torch_file, jax_file, original: str, converted: str, model: str, init: str, seed: int,
                      target, *, weights_map, perturb: bool, float64: bool, weights: str | None = None,
                      weights_prefix: tuple = (), example_inputs=None):
    """build_models, then torch's weights (perturbed when asked; `weights`: a state_dict file
    loaded into the torch model first, never perturbed) copied into the converted model by the
    tables: (torch model, converted model, transfer entries, what apply_transfer did).
    `example_inputs`: Linen builds its variables from model.init(key, *inputs)."""
    from .transfer import apply_transfer, perturb as perturb_weights, plan_transfer

    # every parameter and batch statistic is overwritten below (apply_transfer checks it)
    torch_model, nnx_model = build_models(torch_file, jax_file, original, model, init, seed, target,
                                          throwaway=True)
    if not target.is_model(nnx_model):
        raise VerifyError(f"{converted}: {model}({init}) is a {type(nnx_model).__name__}, "
                          f"not an {target.module_base}")
    if example_inputs is not None:  # Linen: the variables come from model.init(key, *inputs)
        try:
            nnx_model = target.materialize(nnx_model, example_inputs, seed, throwaway=True)
        except Exception as exc:
            raise VerifyError(f"{_where(converted, exc)}: initialising {model} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    if float64:
        torch_model = torch_model.double()
    if weights:
        from .checkpoint import load_into_torch

        load_into_torch(weights, torch_model, weights_prefix)
        perturb = False
    try:
        entries = plan_transfer(torch_model, nnx_model, target=target, weights_map=weights_map)
    except VerifyError as exc:
        raise VerifyError(f"{converted}: {exc}") from exc
    if perturb:
        perturb_weights(entries, seed)
    transferred = apply_transfer(entries, nnx_model, dtype="float64" if float64 else None, target=target)
    return torch_model, nnx_model, entries, transferred


@contextmanager
def _jax_x64(enabled: bool):
    """Enable JAX float64 for the duration (restored afterwards: the flag is process-wide)."""
    import jax

    previous = bool(jax.config.jax_enable_x64)
    if enabled and not previous:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        if enabled and not previous:
            jax.config.update("jax_enable_x64", False)


@contextmanager
def _loaded(path: str, roots: set[str], label: str):
    loaded = load_slice(path, roots, label=label)
    try:
        yield loaded
    finally:
        loaded.unload()


def _candidates(path: str) -> str:
    """The classes (else functions) `path` defines at top level, for an unknown --model's
    message; the slice the loader ran holds only what the model needs, so the file is re-read."""
    try:
        tree = parse_source(path, read_source(path))
    except VerifyError:
        return ""
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    if classes:
        return f"; classes in the file: {', '.join(classes)}"
    functions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if functions:
        return f"; the file defines no class; functions: {', '.join(functions)}"
    return "; the file defines no class or function"


def _unknown_model(loaded: LoadedFile, model: str) -> VerifyError:
    return VerifyError(f"{loaded.path}: no class or function named {model!r}{_candidates(loaded.path)}")


def _where(path: str, exc: BaseException) -> str:
    """`path:line` of the innermost frame of `exc`'s traceback that runs code of `path` (the
    loader compiles each file under its own path), so a failure inside the model names the
    line; `path` alone when the failure never reached the file's code."""
    import traceback

    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == path]
    return f"{path}:{lines[-1]}" if lines and lines[-1] else path


def _lookup(loaded: LoadedFile, model: str):
    head, *rest = model.split(".")
    if head not in loaded.namespace:
        raise _unknown_model(loaded, model)
    obj = loaded.namespace[head]
    for attr in rest:
        if not hasattr(obj, attr):
            raise _unknown_model(loaded, model)
        obj = getattr(obj, attr)
    if not callable(obj):
        raise VerifyError(f"{loaded.path}: {model!r} is not a class or function")
    return obj


def _accepts_keyword(factory, keyword: str) -> bool:
    """Whether the converted class/factory takes `keyword` (True when its signature is unknown)."""
    import inspect

    target = factory.__init__ if isinstance(factory, type) else factory
    if target is object.__init__:
        return False
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _build(loaded: LoadedFile, model: str, init: str, extra: str = "", extra_ns: dict | None = None, shown: str = ""):
    factory = _lookup(loaded, model)
    args = init.strip().rstrip(",").strip()
    call_args = ", ".join(a for a in (args, extra) if a)
    text = f"{model}({', '.join(a for a in (args, shown or extra) if a)})"
    namespace = dict(loaded.namespace)
    namespace.update(extra_ns or {})
    namespace["__pt2jax_factory__"] = factory
    try:
        return eval(f"__pt2jax_factory__({call_args})", namespace)
    except Exception as exc:
        raise VerifyError(f"{_where(loaded.path, exc)}: building {text} failed: {type(exc).__name__}: {exc}") from exc


def _default_loss(leaves, xp_sum):
    total = None
    for _, leaf in leaves:
        part = xp_sum(leaf)
        total = part if total is None else total + part
    return total


def _chain(exc: BaseException):
    """`exc` and the exceptions it was raised from (JAX re-raises a tracing error with a
    filtered traceback and may keep the original as the cause)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def jit_failure(stage: str, path: str, exc: BaseException) -> JitFailure:
    """A JitFailure naming the innermost line of `path` in `exc`'s traceback."""
    import linecache
    import traceback

    line = None
    for link in _chain(exc):
        lines = [f.lineno for f in traceback.extract_tb(link.__traceback__) if f.filename == path and f.lineno]
        if lines:
            line = lines[-1]
            break
    statement = linecache.getline(path, line).strip() if line else ""
    message = next((text.strip() for text in str(exc).splitlines() if text.strip()), "")
    return JitFailure(stage, path, line, statement, type(exc).__name__, message)


def _torch_loss(loaded: LoadedFile, loss: str | None, out, float_leaves, path: str):
    if loss:
        return _eval_loss(loaded, loss, out, path)
    if not float_leaves:
        return None
    return _default_loss(float_leaves, lambda t: t.sum())


def _jax_loss(loaded: LoadedFile, loss: str | None, out, path: str):
    import jax.numpy as jnp

    if loss:
        value = _eval_loss(loaded, loss, out, path)
    else:
        leaves = [(n, x) for n, x in flatten_output(out) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
        value = _default_loss(leaves, jnp.sum)
        if value is None:
            value = jnp.zeros(())
    value = jnp.asarray(value)
    if value.size != 1:
        raise VerifyError(f"{path}: the loss must be a scalar, got shape {tuple(value.shape)}")
    return value.reshape(())


def _eval_loss(loaded: LoadedFile, loss: str, out, path: str):
    try:
        return eval(loss, {**loaded.namespace, "out": out})
    except Exception as exc:
        raise VerifyError(f"{path}: evaluating --loss {loss!r} failed: {type(exc).__name__}: {exc}") from exc
