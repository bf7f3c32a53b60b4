import torch

greeting = "héllo"; x = torch.zeros(3)
y = "日本"; z = torch.fft.rfft(x)
