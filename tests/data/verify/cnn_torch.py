"""A small CNN: Conv2d, BatchNorm2d, ReLU, MaxPool2d inside nn.Sequential, then Flatten and Linear."""
import torch
from torch import nn


class CNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6 * 2 * 2, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.features(x)))


if __name__ == "__main__":
    print(CNN()(torch.randn(2, 1, 8, 8)).shape)
