import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.emb = nn.Embedding(10, 4, max_norm=1.0)
        self.scale = nn.Parameter(torch.ones(3))

    def forward(self, x):
        x = F.gelu(self.fc(x))
        x = x.transpose(0, 1).mean(dim=0)
        y = x.sum(1)
        return torch.fft.rfft(x.to(torch.float32))


torch.manual_seed(0)
seed = torch.manual_seed(1)
device = torch.device("cpu")
model = Net().cuda()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
sched = StepLR(opt, step_size=10)
loader = DataLoader([1, 2, 3])
dtype = torch.float64
model.eval()
with torch.no_grad():
    out = model(torch.randn(2, 4))
with torch.inference_mode() as mode:
    pass


@torch.no_grad()
def evaluate(m):
    return m(torch.zeros(2, 4))


torch.save(model.state_dict(), "model.pt")
state = torch.load("model.pt")
sched.step()
opt.step()
wrapped = nn.DataParallel(model)
