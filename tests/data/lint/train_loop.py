import torch
import torch.nn as nn


def train(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.MSELoss()
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()


def odd(model, x, opt):
    opt.zero_grad()
    model(x).sum().backward()
    print("between")
    opt.step()


def not_an_optimizer(env):
    env.step()
