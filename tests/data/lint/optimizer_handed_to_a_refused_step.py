"""An optimizer handed to a function whose step() stays PyTorch stays PyTorch too."""

import torch


def train_one_epoch(model, criterion, optimizer, data_loader):
    for image, target in data_loader:
        output = model(image)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_ddp(prepared):
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.0001)
    train_one_epoch(prepared, criterion, optimizer, dataset)
