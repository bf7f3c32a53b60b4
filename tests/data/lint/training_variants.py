# Training-loop shapes the planner must treat the same way in lint and in the rewrite.
import torch
import torch.nn as nn
import torch.nn.functional as F


def gan(netD, netG, optimizerD, optimizerG, criterion, loader, label, noise):
    for real in loader:
        netD.zero_grad()
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        fake = netG(noise)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        optimizerD.step()
        netG.zero_grad()
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()


def clipped(model, data):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for x, y in data:
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        opt.step()


def clipped_by_variable(model, data, max_norm):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()


def unconverted_forward(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        opt.step()


def accumulate(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        out = model(x)
        loss = F.mse_loss(out, y)
        acc = (out - y).abs().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        print(acc.item())


def joined_on_one_line(model, data):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in data:
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward(); opt.step()
