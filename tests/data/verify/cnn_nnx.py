"""Hand conversion of cnn_torch.py (PyTorch's NCHW layout kept at every layer boundary)."""
import functools

import jax
import jax.numpy as jnp
from flax import nnx


class ConvNCHW(nnx.Conv):
    """nnx.Conv on channels-first input: move channels last, convolve, move them back."""

    def __call__(self, x):
        channel_axis = x.ndim - len(self.kernel_size) - 1
        y = super().__call__(jnp.moveaxis(x, channel_axis, -1))
        return jnp.moveaxis(y, -1, channel_axis)


class TorchBatchNorm(nnx.BatchNorm):
    """nnx.BatchNorm with PyTorch's defaults written out (eval-mode use only in this test)."""


def max_pool2d(x, kernel_size, stride=None):
    stride = kernel_size if stride is None else stride
    window = (1, 1, kernel_size, kernel_size)
    strides = (1, 1, stride, stride)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, "VALID")


class CNN(nnx.Module):
    def __init__(self, in_channels=1, num_classes=5, *, rngs: nnx.Rngs):
        self.features = nnx.Sequential(
            ConvNCHW(in_channels, 4, kernel_size=(3, 3), padding=((1, 1), (1, 1)), rngs=rngs),
            TorchBatchNorm(4, axis=1, momentum=0.9, epsilon=1e-5, use_fast_variance=False, rngs=rngs),
            jax.nn.relu,
            functools.partial(max_pool2d, kernel_size=2),
            ConvNCHW(4, 6, kernel_size=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), rngs=rngs),
            jax.nn.relu,
        )
        self.flatten = functools.partial(jax.lax.collapse, start_dimension=1)
        self.fc = nnx.Linear(6 * 2 * 2, num_classes, rngs=rngs)

    def __call__(self, x):
        return self.fc(self.flatten(self.features(x)))


if __name__ == "__main__":
    print(CNN(rngs=nnx.Rngs(0))(jnp.zeros((2, 1, 8, 8))).shape)
