"""An earlier function's train step is planned with its own optimizer (Adam of model), not with
the SGD a later function binds to the same name (corpus: torch/testing/_internal/common_quantization.py)."""

import torch


def test_only_train_fn(model, train_data, loss_fn):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    for data, target in train_data:
        optimizer.zero_grad()
        output = model(data)
        loss = loss_fn(output, target)
        loss.backward()
        optimizer.step()


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
