"""Files: the one walker every command uses (walk.py) and the one reader and atomic writer
(fsio), so lint, `lint --fix` and rewrite see and write files the same way."""

from ..fsio import read_source, write_atomic, write_text_atomic
from .walk import AnyOf, Discovery, FileRules, SourceFile, discover

__all__ = ["AnyOf", "Discovery", "FileRules", "SourceFile", "discover", "read_source", "write_atomic",
           "write_text_atomic"]
