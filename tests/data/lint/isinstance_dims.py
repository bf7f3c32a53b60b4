import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(2, 3, 3)
        self.c2 = nn.Conv2d(3, 4, 3)
        self.b1 = nn.BatchNorm1d(3)
        self.b2 = nn.BatchNorm2d(4)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 0.5)
            elif isinstance(m, nn.Conv1d):
                nn.init.zeros_(m.weight)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)

    def forward(self, x, y):
        return self.b1(self.c1(x)).sum() + self.b2(self.c2(y)).sum()
