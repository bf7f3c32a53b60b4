"""Module and tensor API with no one-call JAX equivalent: each line is a TODO whose advice is
the target's (tests/test_linen_wording.py)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.scale = nn.Parameter(torch.ones(3), requires_grad=False)
        self.register_parameter("extra", nn.Parameter(torch.zeros(3)))
        self.fc.register_forward_hook(lambda m, i, o: o)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5) * self.scale


def inspect_model(model, x, other):
    count = sum(p.numel() for p in model.parameters())
    names = [n for n, _ in model.named_children()]
    every = list(model.modules())
    state = model.state_dict()
    other.load_state_dict(state)
    grads = [p.grad for p in model.parameters()]
    frozen = [p.requires_grad for p in model.parameters()]
    x.requires_grad_()
    model.apply(lambda m: None)
    loss = model(x).sum()
    loss.backward()
    g = torch.Generator()
    g.manual_seed(1)
    torch.manual_seed(0)
    return count, names, every, grads, frozen, torch.randn(2, generator=g), torch.randn(3)
