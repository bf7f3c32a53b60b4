import torch
import torch.nn as nn
import torch.nn.functional as F


def parameter(nn):
    return nn.Linear(4, 3)


def assigned(x):
    F = make_functions()
    return F.relu(x)


def local_def():
    def torch():
        pass

    return torch.zeros(3)


class nn_holder:
    nn = object()
    layer = nn.Linear(2, 2)


def uses_module_level(x):
    return F.relu(x)


def comprehension(layers):
    return [nn.Linear(2, 2) for nn in layers]


def global_name():
    global F
    return F.relu(1)


try:
    import torch.nn.functional as G
except ImportError:
    G = None


def uses_g(x):
    return G.gelu(x)
