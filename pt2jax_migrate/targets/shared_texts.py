"""Pieces of helper texts that every target writes alike (source text only, framework-neutral):
each target's helpers*.py puts them into its own definitions, naming its module API where the
targets differ (how a parameter is read, how dropout runs), so the two renderings of one
PyTorch behaviour cannot drift apart.
"""

from __future__ import annotations

__all__ = ["GROUPS_MULTI_TRANSFORM", "SIZE_MISMATCH_CHECK", "mha_forward", "recurrent_cell_call",
           "recurrent_layers_loop", "strict_keys_check"]


def mha_forward(*, in_proj_weight: str, has_bias: str, in_proj_bias: str, attention_dropout: str) -> str:
    """TorchMultiheadAttention.__call__'s body: the packed projections (`in_proj_weight`,
    `in_proj_bias`: how the module reads its arrays; `has_bias`: whether it has a bias), masks
    as PyTorch's, `attention_dropout` the dropped attention weights (of `{weights}`)."""
    dropped = attention_dropout.replace("{weights}", "jax.nn.softmax(scores, axis=-1)")
    return f'''\
        if is_causal and attn_mask is None:
            # as in PyTorch: is_causal is only a hint that attn_mask is the causal mask
            raise ValueError("is_causal=True needs attn_mask (the causal mask) as well")
        batched = query.ndim == 3
        if not batched:
            query, key, value = query[None], key[None], value[None]
            key_padding_mask = None if key_padding_mask is None else key_padding_mask[None]
        elif not self.batch_first:
            query, key, value = (jnp.swapaxes(t, 0, 1) for t in (query, key, value))
        n, length, e = query.shape
        heads, head_dim = self.num_heads, e // self.num_heads
        w_q, w_k, w_v = jnp.split({in_proj_weight}, 3)
        b_q = b_k = b_v = 0.0
        if {has_bias}:
            b_q, b_k, b_v = jnp.split({in_proj_bias}, 3)

        def project(x, w, b):  # (N, T, E) -> (N, heads, T, head_dim)
            y = x @ w.T + b
            return jnp.swapaxes(y.reshape(n, x.shape[1], heads, head_dim), 1, 2)

        q, k, v = project(query, w_q, b_q), project(key, w_k, b_k), project(value, w_v, b_v)
        scores = (q / math.sqrt(head_dim)) @ jnp.swapaxes(k, -1, -2)  # (N, heads, L, S)
        masks = []  # broadcast to the scores (N, heads, L, S)
        if attn_mask is not None:  # (L, S) or (N * heads, L, S)
            if attn_mask.ndim == 3:
                attn_mask = attn_mask.reshape(n, heads, *attn_mask.shape[1:])
            masks.append(attn_mask)
        if key_padding_mask is not None:  # (N, S)
            masks.append(key_padding_mask[:, None, None, :])
        for mask in masks:  # bool: True is masked out; float: added
            scores = jnp.where(mask, -jnp.inf, scores) if mask.dtype == bool else scores + mask
        weights = {dropped}
        out = jnp.swapaxes(weights @ v, 1, 2).reshape(n, length, e)
        out = self.out_proj(out)
        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = jnp.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, (weights if batched else weights[0])
'''


def recurrent_layers_loop(*, directions: str, first_directions: str, weight: str, mode: str,
                          dropout_test: str, dropout: str) -> str:
    """A stacked LSTM/GRU/RNN's initial state (of `hx`, zeros of `shape`), its layers over `x`
    through its return, and flatten_parameters: `directions` the count, `first_directions` the slice of
    ("", "_reverse") as written, `weight` a parameter array (of `{name}` from `name`, `layer`,
    `suffix`), `mode` the cell kind, `dropout_test`/`dropout` when and how dropout runs between
    layers (on `x`)."""
    return f'''\
        if hx is None:
            h0 = c0 = jnp.zeros(shape, x.dtype)
        else:
            h0, c0 = hx if lstm else (hx, None)
            if not batched:
                h0 = h0[:, None]
                c0 = c0[:, None] if lstm else None
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if self.bias else 2]
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction, suffix in enumerate(("", "_reverse"){first_directions}):
                weights = [{weight} for name in names]
                weights += [None] * (4 - len(weights))
                index = layer * {directions} + direction
                state = (h0[index], c0[index]) if lstm else h0[index]

                def step(carry, x_t, weights=weights):
                    carry = torch_recurrent_step({mode}, x_t, carry, *weights)
                    return carry, carry[0] if lstm else carry

                # reverse=True walks the sequence backwards but keeps outputs aligned with inputs
                state, ys = jax.lax.scan(step, state, x, reverse=direction == 1)
                outputs.append(ys)
                h_n.append(state[0] if lstm else state)
                if lstm:
                    c_n.append(state[1])
            x = jnp.concatenate(outputs, axis=-1)
            if {dropout_test} and layer < self.num_layers - 1:
                x = {dropout}
        output, h_n = x, jnp.stack(h_n)
        c_n = jnp.stack(c_n) if lstm else None
        if not batched:
            output, h_n = output[:, 0], h_n[:, 0]
            c_n = c_n[:, 0] if lstm else None
        elif self.batch_first:
            output = jnp.swapaxes(output, 0, 1)
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def flatten_parameters(self):
        """Nothing to do (torch compacts weights for cuDNN): code calling it runs unchanged."""
'''


def recurrent_cell_call(*, weights: str, mode: str) -> str:
    """An LSTM/GRU/RNN cell's __call__ after `lstm` is set: one step of `input` from `hx` (zeros
    when None), `weights` the lines that gather (weight_ih, weight_hh, bias_ih, bias_hh) into
    `weights`, `mode` the cell kind."""
    return f'''\
        batched = input.ndim == 2
        x = input if batched else input[None]
        if hx is None:
            zeros = jnp.zeros((x.shape[0], self.hidden_size), x.dtype)
            hx = (zeros, zeros) if lstm else zeros
        elif not batched:
            hx = (hx[0][None], hx[1][None]) if lstm else hx[None]
{weights}        out = torch_recurrent_step({mode}, x, hx, *weights)
        if batched:
            return out
        return (out[0][0], out[1][0]) if lstm else out[0]
'''


def strict_keys_check(names: str) -> str:
    """load_state_dict's key check (in a function of `obj`, `state` read into `given`, `strict`):
    the `missing` and `unexpected` keys against the model's `names`, an error under strict."""
    return f'''\
    missing = [name for name in {names} if name not in given]
    unexpected = [name for name in given if name not in {names}]
    if strict and (missing or unexpected):
        raise RuntimeError(f"Error(s) in loading state_dict for {{type(obj).__name__}}: "
                           f"missing keys {{missing}}, unexpected keys {{unexpected}}")
'''


# load_state_dict: a checkpoint's array `given[name]` as the current array `old`, its shape checked
SIZE_MISMATCH_CHECK = '''\
            value = jnp.asarray(given[name], dtype=old.dtype)
            if value.shape != old.shape:
                raise RuntimeError(f"size mismatch for {name}: checkpoint {value.shape}, "
                                   f"current {old.shape}")
'''

# torch_param_groups' end: one optax transform per group (`transforms`), the parameters in no
# group not trained, each parameter's group given by `label_of(path, leaf)`
GROUPS_MULTI_TRANSFORM = '''\
    named = {f"group{i}": tx for i, tx in enumerate(transforms)}
    named["not_optimized"] = optax.set_to_zero()
    return optax.multi_transform(
        named, lambda params: jax.tree_util.tree_map_with_path(label_of, params))
'''
