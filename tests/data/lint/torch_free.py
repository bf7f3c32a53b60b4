"""Mentions torch in a docstring, and has a name torchlike, but imports nothing from it."""
import json

torchlike = json.dumps({"torch": 1})


def view(x):
    return x.view(2, 3).to("cuda")
