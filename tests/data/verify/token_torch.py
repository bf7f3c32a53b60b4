"""Embedding + LayerNorm + exact GELU + Conv1d over time, returning a dict with a nested tuple."""
import torch
from torch import nn


class TokenNet(nn.Module):
    def __init__(self, vocab=20, dim=8, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.mix = nn.Conv1d(dim, dim, 3, padding=1)
        self.proj = nn.Linear(dim, classes)

    def forward(self, tokens):
        h = self.act(self.norm(self.embed(tokens)))  # (B, T, D)
        m = self.mix(h.transpose(1, 2))  # Conv1d wants (B, D, T)
        logits = self.proj(m.mean(dim=2))
        return {"logits": logits, "features": (h, m.amax(dim=2))}
