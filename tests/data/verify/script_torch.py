"""Train a patch classifier on MNIST: a typical script with all its work at top level."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision import transforms

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pair = lambda t: t if isinstance(t, tuple) else (t, t)
HIDDEN = 16
ACTIVATIONS = {"relu": F.relu, "silu": F.silu}
ACTIVATIONS["gelu"] = F.gelu


@dataclass
class Config:
    hidden: int = HIDDEN
    act: str = "silu"


parser = argparse.ArgumentParser(description="train")
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()  # would fail under pytest's argv if it ran
torch.manual_seed(args.epochs)


class PatchNet(nn.Module):
    def __init__(self, cfg: Config = Config(), patch=4):
        super().__init__()
        ph, pw = pair(patch)
        self.patch = (ph, pw)
        self.embed = nn.Linear(ph * pw, cfg.hidden)
        self.act = ACTIVATIONS[cfg.act]
        self.out = nn.Linear(cfg.hidden, 10)

    def forward(self, x):
        x = x.to(device)
        b, c, height, width = x.shape
        ph, pw = self.patch
        x = x.reshape(b, c, height // ph, ph, width // pw, pw).permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(b, -1, c * ph * pw)
        h = self.act(self.embed(x)).mean(dim=1)
        return self.out(h)


transform = transforms.Compose([transforms.ToTensor()])
train_set = torchvision.datasets.MNIST(os.path.expanduser("~/data"), download=True, transform=transform)
loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)
x, y = next(iter(loader))  # a top-level `x` that forward's local `x` must not pull in
model = PatchNet().to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
losses = []
for epoch in range(args.epochs):
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
plt.plot(losses)
plt.savefig("loss.png")
raise SystemExit("top-level training code ran")

if __name__ == "__main__":
    torch.save(model.state_dict(), "model.pt")
