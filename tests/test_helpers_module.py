"""Shared helpers once per package: a folder rewrite writes one helpers module that the
converted files import; a file named directly keeps its helpers inline."""

import ast
import os

import pytest

from pt2jax_migrate.api import RewriteRefused, rewrite_paths
from pt2jax_migrate.core.residue import unmarked_residue
from pt2jax_migrate.targets import get_target
from pt2jax_migrate.targets.base import HELPERS_MODULE_HEADER

NET = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))
'''
PLAIN = "import json\n\nprint(json.dumps({'a': 1}))\n"
HELPERS = "_pt2jax_helpers"


@pytest.fixture
def tree(tmp_path):
    """src/pkg (a package with a subpackage), src/scripts (loose scripts), src/plain.py."""
    src = tmp_path / "src"
    for folder in ("pkg/sub", "scripts"):
        (src / folder).mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "sub" / "__init__.py").write_text("")
    for path in ("pkg/net.py", "pkg/sub/deep.py", "scripts/script.py"):
        (src / path).write_text(NET)
    (src / "plain.py").write_text(PLAIN)
    return src


def _imports_torch(text: str) -> bool:
    tree = ast.parse(text)
    return any(isinstance(n, ast.Import) and any(a.name.split(".")[0] == "torch" for a in n.names)
               or isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "torch" for n in ast.walk(tree))


def _files(root) -> dict[str, bytes]:
    return {os.path.relpath(p, root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_folder_rewrite_writes_one_helpers_module_per_package_and_files_import_it(tree, tmp_path):
    out = tmp_path / "out"
    run = rewrite_paths([str(tree)], out=str(out))
    assert not run.errors
    files = _files(out)
    # one module for the package (at its top, used by the subpackage too), one beside the loose script
    modules = sorted(p for p in files if os.path.basename(p) == HELPERS + ".py")
    assert modules == [os.path.join("pkg", HELPERS + ".py"), os.path.join("scripts", HELPERS + ".py")]
    assert sorted(run.helpers_written) == sorted(str(out / m) for m in modules)
    net = files[os.path.join("pkg", "net.py")].decode()
    deep = files[os.path.join("pkg", "sub", "deep.py")].decode()
    script = files[os.path.join("scripts", "script.py")].decode()
    assert f"\nfrom .{HELPERS} import ConvNCHW, TorchBatchNorm, torch_bias_init, torch_kernel_init\n" in net
    assert f"\nfrom ..{HELPERS} import ConvNCHW, " in deep
    assert f"\nfrom {HELPERS} import ConvNCHW, " in script
    for text in (net, deep, script):  # no copies of the definitions
        assert "class ConvNCHW" not in text and "def torch_bias_init" not in text
        assert not _imports_torch(text)
    module = files[os.path.join("pkg", HELPERS + ".py")].decode()
    assert module == get_target("nnx").helpers_module_source()
    assert module.startswith(HELPERS_MODULE_HEADER) and not _imports_torch(module)
    assert unmarked_residue(module, ast.parse(module)) == []  # torch-free (its docstrings name torch)
    assert files["plain.py"] == PLAIN.encode()  # torch-free: copied byte for byte, no helpers module


def test_a_file_named_directly_keeps_its_helpers_inline(tree, tmp_path):
    out = tmp_path / "one"
    run = rewrite_paths([str(tree / "pkg" / "net.py")], out=str(out))
    assert not run.errors and run.helpers_written == []
    assert _files(out).keys() == {"net.py"}
    text = (out / "net.py").read_text()
    assert "class ConvNCHW(nnx.Conv):" in text and HELPERS not in text


def test_inline_helpers_when_no_module_is_asked_for(tree, tmp_path):
    run = rewrite_paths([str(tree)], out=str(tmp_path / "out"), helpers_module=None)
    assert not run.errors and run.helpers_written == []
    assert not list((tmp_path / "out").rglob(HELPERS + ".py"))
    assert "class ConvNCHW(nnx.Conv):" in (tmp_path / "out" / "pkg" / "net.py").read_text()


def test_findings_are_the_same_with_and_without_the_helpers_module(tree, tmp_path):
    shared = rewrite_paths([str(tree)], write=False)
    inline = rewrite_paths([str(tree)], write=False, helpers_module=None)

    def key(run):
        return [(os.path.relpath(f.path, tree), f.line, f.col, f.code, f.message) for f in run.findings]

    assert key(shared) == key(inline) and key(shared)
    assert shared.helpers_written == []  # --check/--diff write nothing, the module neither


def test_in_place_rewrite_is_idempotent_and_the_output_rewrites_to_itself(tree, tmp_path):
    first = rewrite_paths([str(tree)])
    assert not first.errors and len(first.helpers_written) == 2
    after_first = _files(tree)
    second = rewrite_paths([str(tree)])
    assert not second.errors and second.changed == [] and second.helpers_written == []
    assert _files(tree) == after_first
    # the converted folder through --out: every file copied unchanged
    rewrite_paths([str(tree)], out=str(tmp_path / "again"))
    assert _files(tmp_path / "again") == after_first


def test_a_user_file_with_the_helpers_module_name_is_not_overwritten(tree, tmp_path):
    mine = tree / "pkg" / (HELPERS + ".py")
    mine.write_text("VALUE = 1\n")
    before = _files(tree)
    with pytest.raises(RewriteRefused, match=f"{HELPERS}.py exists and was not written by pt2jax"):
        rewrite_paths([str(tree)])
    assert _files(tree) == before
    # another name works
    run = rewrite_paths([str(tree)], helpers_module="shared_ops")
    assert not run.errors and (tree / "pkg" / "shared_ops.py").is_file() and mine.read_text() == "VALUE = 1\n"
    assert "\nfrom .shared_ops import ConvNCHW, " in (tree / "pkg" / "net.py").read_text()


def test_cli_helpers_options(run, tree, tmp_path):
    result = run("rewrite", "--out", tmp_path / "a", tree)
    assert result.exit_code == 0, result.stderr
    assert f"Wrote the shared helpers module {tmp_path / 'a' / 'pkg' / (HELPERS + '.py')}." in result.stderr
    result = run("rewrite", "--out", tmp_path / "b", "--helpers-module", "ops_jax", tree)
    assert result.exit_code == 0 and (tmp_path / "b" / "scripts" / "ops_jax.py").is_file()
    result = run("rewrite", "--out", tmp_path / "c", "--inline-helpers", tree)
    assert result.exit_code == 0 and not list((tmp_path / "c").rglob("*helpers*"))
    result = run("rewrite", "--out", tmp_path / "d", "--helpers-module", "not-a-name", tree)
    assert result.exit_code == 2 and "not a module name" in result.stderr


@pytest.mark.parametrize("path", ["pkg/sub/deep.py", "scripts/script.py"])
def test_verify_passes_on_files_that_import_the_helpers_module(tree, tmp_path, path):
    """Relative import inside a package (the original package of the same name is loaded first)
    and absolute import beside a loose script."""
    from pt2jax_migrate.verify import run_verify

    out = tmp_path / "out"
    assert not rewrite_paths([str(tree)], out=str(out)).errors
    report = run_verify(str(tree / path), str(out / path), model="Net", inputs=["float32[2,3,8,8]"])
    assert report.passed, [c for c in report.comparisons if not c.passed]
    assert report.transferred == 8  # conv (2), bn (2 + running mean/var + num_batches_tracked), fc (2)
