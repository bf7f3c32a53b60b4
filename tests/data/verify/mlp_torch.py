"""An MLP with an nn.ModuleList, an nn.Parameter, a buffer and a detached branch."""
import torch
import torch.nn as nn


class MLP(nn.Module):
    def __init__(self, in_dim=6, hidden=(8, 8), out_dim=3):
        super().__init__()
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
        self.gate = nn.Linear(dims[-1], out_dim)
        self.head = nn.Linear(dims[-1], out_dim)
        self.temperature = nn.Parameter(torch.ones(out_dim))
        self.register_buffer("center", torch.zeros(in_dim))

    def forward(self, x):
        h = x - self.center
        for layer in self.layers:
            h = torch.tanh(layer(h))
        gate = torch.sigmoid(self.gate(h.detach()))  # the gate does not train the trunk
        return self.head(h) * gate * self.temperature
