"""Helpers for converted parameter initialisation (`nn.init.*`, in-place `weight.normal_()`).

`torch_init.K(param, *torch_args, layout=..., key=...)` computes what torch's `nn.init.K_` would
write, in torch's layout and with torch's fans, and writes it into the converted parameter
through `layout`: the weight table's transform from the torch tensor to that parameter
(rules/layers.toml `weights`). `module_apply` is torch's Module.apply. Source text only.
"""

from __future__ import annotations

TORCH_INIT = '''\
class torch_init:
    """torch.nn.init on converted parameters: values computed in PyTorch's layout (its shape,
    fans and random-number semantics), written through the weight table's layout transform."""

    # torch tensor -> converted parameter (as the weight transfer maps them)
    LAYOUTS = {
        "copy": lambda a: a,
        "transpose": lambda a: a.T,  # Linear (out, in) -> kernel (in, out)
        # conv: (O, I/g, *k) -> (*k, I/g, O); conv_transpose: (I, O/g, *k) -> (*k, O/g, I)
        "conv": lambda a: jnp.transpose(a, (*range(2, a.ndim), 1, 0)),
        "conv_transpose": lambda a: jnp.transpose(a, (*range(2, a.ndim), 1, 0)),
    }

    @staticmethod
    def torch_shape(shape, layout):
        shape = tuple(shape)
        if layout == "copy":
            return shape
        if layout == "transpose":
            return shape[::-1]
        return (shape[-1], shape[-2], *shape[:-2])  # conv, conv_transpose

    # converted parameter -> torch tensor (the inverse of LAYOUTS)
    TORCH_LAYOUTS = {
        "copy": lambda a: a,
        "transpose": lambda a: a.T,
        "conv": lambda a: jnp.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2))),
        "conv_transpose": lambda a: jnp.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2))),
    }

    @classmethod
    def value(cls, param, *, layout="copy"):
        """The parameter as torch code reads `m.weight` in an init: torch's layout, so its
        shape, numel(), size(0) and fans are torch's. A missing one (`bias=False`) is None, as
        in torch."""
        return None if param is None else cls.TORCH_LAYOUTS[layout](param.get_value())

    @classmethod
    def _write(cls, param, layout, value):
        if isinstance(param, jax.Array):  # a new tensor filled in place: its values, returned
            return jnp.asarray(value, dtype=param.dtype).reshape(param.shape)
        old = param.get_value()
        new = cls.LAYOUTS[layout](jnp.asarray(value, dtype=old.dtype))
        if new.shape != old.shape:  # never let a layout mix-up broadcast silently
            raise ValueError(f"init of shape {new.shape} for a parameter of shape {old.shape}")
        param.set_value(new)
        return param

    @classmethod
    def _shape(cls, param, layout):
        if isinstance(param, jax.Array):
            return param.shape
        return cls.torch_shape(param.get_value().shape, layout)

    @staticmethod
    def fans(shape):
        """torch's _calculate_fan_in_and_fan_out on a torch-layout shape."""
        if len(shape) < 2:
            raise ValueError("fan in and fan out need a tensor of at least 2 dimensions")
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive

    @staticmethod
    def gain(nonlinearity, param=None):
        """torch.nn.init.calculate_gain."""
        if nonlinearity in ("linear", "sigmoid") or nonlinearity.startswith("conv"):
            return 1.0
        if nonlinearity == "tanh":
            return 5.0 / 3
        if nonlinearity == "relu":
            return math.sqrt(2.0)
        if nonlinearity == "leaky_relu":
            slope = 0.01 if param is None else param
            return math.sqrt(2.0 / (1 + slope**2))
        if nonlinearity == "selu":
            return 3.0 / 4
        raise ValueError(f"unsupported nonlinearity {nonlinearity}")

    # ------------------------------------------------------------- deterministic

    @classmethod
    def constant(cls, param, val, *, layout="copy"):
        return cls._write(param, layout, jnp.full(cls._shape(param, layout), val))

    @classmethod
    def zeros(cls, param, *, layout="copy"):
        return cls.constant(param, 0.0, layout=layout)

    @classmethod
    def ones(cls, param, *, layout="copy"):
        return cls.constant(param, 1.0, layout=layout)

    @classmethod
    def eye(cls, param, *, layout="copy"):
        shape = cls._shape(param, layout)
        if len(shape) != 2:
            raise ValueError("eye_ needs a 2-dimensional tensor")
        return cls._write(param, layout, jnp.eye(*shape))

    @classmethod
    def dirac(cls, param, groups=1, *, layout="copy"):
        shape = cls._shape(param, layout)
        if len(shape) not in (3, 4, 5) or shape[0] % groups:
            raise ValueError("dirac_ needs a 3-5 dimensional tensor whose dim 0 divides by groups")
        out_per_group = shape[0] // groups
        # a 1 at the kernel's centre for each (out, in) pair of a group
        per_group = min(out_per_group, shape[1])
        pairs = [(g * out_per_group + d, d) for g in range(groups) for d in range(per_group)]
        centre = tuple(k // 2 for k in shape[2:])
        index = (jnp.array([o for o, _ in pairs]), jnp.array([i for _, i in pairs]), *centre)
        return cls._write(param, layout, jnp.zeros(shape).at[index].set(1.0))

    @classmethod
    def copy(cls, param, src, *, layout="copy"):
        shape = cls._shape(param, layout)
        return cls._write(param, layout, jnp.broadcast_to(jnp.asarray(src), shape))

    # ------------------------------------------------------------- random (explicit key)

    @classmethod
    def uniform(cls, param, a=0.0, b=1.0, *, layout="copy", key):
        shape = cls._shape(param, layout)
        return cls._write(param, layout, jax.random.uniform(key, shape, minval=a, maxval=b))

    @classmethod
    def normal(cls, param, mean=0.0, std=1.0, *, layout="copy", key):
        shape = cls._shape(param, layout)
        return cls._write(param, layout, mean + std * jax.random.normal(key, shape))

    @classmethod
    def trunc_normal(cls, param, mean=0.0, std=1.0, a=-2.0, b=2.0, *, layout="copy", key):
        # torch's a, b are absolute bounds; jax.random.truncated_normal takes them in std units
        shape = cls._shape(param, layout)
        unit = jax.random.truncated_normal(key, (a - mean) / std, (b - mean) / std, shape)
        return cls._write(param, layout, jnp.clip(mean + std * unit, a, b))

    @classmethod
    def xavier_uniform(cls, param, gain=1.0, *, layout="copy", key):
        fan_in, fan_out = cls.fans(cls._shape(param, layout))
        bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
        return cls.uniform(param, -bound, bound, layout=layout, key=key)

    @classmethod
    def xavier_normal(cls, param, gain=1.0, *, layout="copy", key):
        fan_in, fan_out = cls.fans(cls._shape(param, layout))
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return cls.normal(param, 0.0, std, layout=layout, key=key)

    @classmethod
    def _kaiming_std(cls, param, layout, a, mode, nonlinearity):
        fan_in, fan_out = cls.fans(cls._shape(param, layout))
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f"mode {mode} not supported, use fan_in or fan_out")
        return cls.gain(nonlinearity, a) / math.sqrt(fan_in if mode == "fan_in" else fan_out)

    @classmethod
    def kaiming_uniform(cls, param, a=0, mode="fan_in", nonlinearity="leaky_relu", *,
                        layout="copy", key):
        bound = math.sqrt(3.0) * cls._kaiming_std(param, layout, a, mode, nonlinearity)
        return cls.uniform(param, -bound, bound, layout=layout, key=key)

    @classmethod
    def kaiming_normal(cls, param, a=0, mode="fan_in", nonlinearity="leaky_relu", *,
                       layout="copy", key):
        std = cls._kaiming_std(param, layout, a, mode, nonlinearity)
        return cls.normal(param, 0.0, std, layout=layout, key=key)

    @classmethod
    def orthogonal(cls, param, gain=1.0, *, layout="copy", key):
        shape = cls._shape(param, layout)
        if len(shape) < 2:
            raise ValueError("orthogonal_ needs a tensor of at least 2 dimensions")
        rows = shape[0]
        cols = math.prod(shape) // rows
        flat = jax.random.normal(key, (rows, cols))
        if rows < cols:
            flat = flat.T
        q, r = jnp.linalg.qr(flat)
        q = q * jnp.sign(jnp.diagonal(r))  # torch's sign fix: a uniform (Haar) orthogonal matrix
        if rows < cols:
            q = q.T
        return cls._write(param, layout, gain * q.reshape(shape))
'''

SUBMODULES = '''\
def submodules(module):
    """torch's Module.modules(): every submodule and the module itself (children first here)."""
    return [submodule for _, submodule in nnx.iter_modules(module)]
'''

MODULE_APPLY = '''\
def module_apply(module, fn, **kwargs):
    """torch's Module.apply: fn on every submodule, children before their parent."""
    for _, submodule in nnx.iter_modules(module):
        fn(submodule, **kwargs)
    return module
'''
