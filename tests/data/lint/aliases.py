import torch
import torch.nn as tnn
import torch.nn.functional as F
from torch import nn
from torch.nn import functional as G
from torch.nn import Linear as L


a = torch.nn.Linear(4, 3)
b = tnn.Linear(4, 3)
c = nn.Linear(4, 3)
d = L(4, 3)
e = torch.nn.functional.relu(a)
f = F.relu(a)
g = G.relu(a)
