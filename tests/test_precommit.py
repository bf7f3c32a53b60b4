"""The pre-commit hooks, run by the real `pre-commit` program in a throwaway git repository.

The hook definitions are read from this repository's .pre-commit-hooks.yaml and used as a
`repo: local` hook with `language: system` pointing at the installed `pt2jax` script, so
pre-commit needs no network (a `language: python` hook would pip-install the repository).
Everything else (id, entry arguments, file types, require_serial) is the manifest's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRE_COMMIT = BIN / "pre-commit"
PT2JAX = BIN / "pt2jax"

pytestmark = pytest.mark.skipif(
    not (PRE_COMMIT.exists() and PT2JAX.exists() and shutil.which("git")),
    reason="needs git, pre-commit and the installed pt2jax script next to the interpreter",
)

TORCH_FILE = "import torch\n\nx = torch.zeros(3)\n"
RANDOM_FILE = "import torch\n\nx = torch.zeros(3)\nnoise = torch.randn(3)\n"
PLAIN_FILE = "import json\n\nprint(json.dumps([1, 2]))\n"


def manifest() -> list[dict]:
    """.pre-commit-hooks.yaml, parsed with the YAML library pre-commit itself uses."""
    import yaml

    return yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def test_manifest_declares_both_hooks():
    hooks = {h["id"]: h for h in manifest()}
    assert set(hooks) == {"pt2jax-lint", "pt2jax-rewrite"}
    assert hooks["pt2jax-lint"]["entry"] == "pt2jax lint"
    # the fixer applies safe fixes only, and fails the run only by modifying files
    assert hooks["pt2jax-rewrite"]["entry"] == "pt2jax lint --fix --exit-zero"
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["types"] == ["python"]
        assert hook["require_serial"] is True  # one process sees the whole commit (--report, --output)


class Repo:
    def __init__(self, work: Path, env: dict):
        self.work, self.env = work, env

    def git(self, *args, check=True, **extra_env):
        return subprocess.run(["git", *args], cwd=self.work, env={**self.env, **extra_env}, capture_output=True,
                              text=True, check=check)

    def pre_commit(self, *args):
        return subprocess.run([str(PRE_COMMIT), *args], cwd=self.work, env=self.env, capture_output=True, text=True)

    def write(self, name: str, text: str) -> Path:
        path = self.work / name
        path.write_text(text)
        return path


@pytest.fixture
def repo(tmp_path):
    import yaml

    work = tmp_path / "repo"
    work.mkdir()
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PT2JAX_CACHE_DIR": str(tmp_path / "pt2jax-cache"),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    hooks = []
    for hook in manifest():
        local = dict(hook, language="system")
        local["entry"] = hook["entry"].replace("pt2jax", str(PT2JAX), 1)
        hooks.append(local)
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump({"repos": [{"repo": "local", "hooks": hooks}]}))
    r = Repo(work, env)
    r.git("init", "-q", "-b", "main")
    r.git("add", ".pre-commit-config.yaml")
    return r


def test_lint_hook_fails_on_torch_code_and_passes_on_torch_free_code(repo):
    repo.write("plain.py", PLAIN_FILE)
    repo.write("notes.txt", "import torch\n")  # not a python file: never passed to the hook
    repo.git("add", "plain.py", "notes.txt")
    ok = repo.pre_commit("run", "pt2jax-lint")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "pt2jax lint" in ok.stdout and "Passed" in ok.stdout

    repo.write("model.py", TORCH_FILE)
    repo.git("add", "model.py")
    bad = repo.pre_commit("run", "pt2jax-lint")
    assert bad.returncode == 1
    assert "Failed" in bad.stdout
    assert "model.py:3:5 PTJ104 torch.zeros tensor creation [fixable]" in bad.stdout
    assert "plain.py:" not in bad.stdout and "notes.txt" not in bad.stdout


def test_installed_hook_blocks_a_commit_with_torch_code(repo):
    install = repo.pre_commit("install", "-t", "pre-commit")
    assert install.returncode == 0, install.stdout + install.stderr
    repo.write("plain.py", PLAIN_FILE)
    repo.git("add", "plain.py")
    commit = repo.git("commit", "-q", "-m", "plain", check=False, SKIP="pt2jax-rewrite")
    assert commit.returncode == 0, commit.stdout + commit.stderr

    repo.write("model.py", TORCH_FILE)
    repo.git("add", "model.py")
    blocked = repo.git("commit", "-q", "-m", "torch", check=False, SKIP="pt2jax-rewrite")
    assert blocked.returncode != 0
    assert "PTJ104" in blocked.stdout + blocked.stderr
    assert repo.git("log", "--format=%s").stdout.split() == ["plain"]


def test_rewrite_hook_converts_staged_files(repo):
    repo.write("model.py", TORCH_FILE)
    repo.write("plain.py", PLAIN_FILE)
    repo.git("add", "model.py", "plain.py")
    result = repo.pre_commit("run", "pt2jax-rewrite")
    # a fixer that changes files fails the run, so the change can be reviewed and staged
    assert result.returncode == 1
    assert "files were modified by this hook" in result.stdout
    converted = (repo.work / "model.py").read_text()
    assert "import torch" not in converted and "jnp.zeros" in converted
    assert (repo.work / "plain.py").read_text() == PLAIN_FILE
    repo.git("add", "model.py")
    again = repo.pre_commit("run", "pt2jax-rewrite")
    assert again.returncode == 0, again.stdout  # idempotent
    assert repo.pre_commit("run", "pt2jax-lint").returncode == 0


def test_rewrite_hook_applies_safe_fixes_only(repo):
    repo.write("noisy.py", RANDOM_FILE)
    repo.git("add", "noisy.py")
    result = repo.pre_commit("run", "pt2jax-rewrite")
    assert result.returncode == 1 and "files were modified by this hook" in result.stdout
    converted = (repo.work / "noisy.py").read_text()
    assert "x = jnp.zeros((3,))" in converted
    assert "noise = torch.randn(3)" in converted and "import torch" in converted  # unsafe: left alone
    # what remains (the rewrite added `import jax.numpy as jnp` above it)
    assert "noisy.py:5:9 PTJ104 torch.randn tensor creation [unsafe fix]" in result.stdout  # changes numbers
    repo.git("add", "noisy.py")
    again = repo.pre_commit("run", "pt2jax-rewrite")
    assert again.returncode == 0, again.stdout  # nothing left it may fix: passes
    lint = repo.pre_commit("run", "pt2jax-lint")
    assert lint.returncode == 1 and "PTJ104" in lint.stdout  # the lint hook still holds the line


def test_hooks_honour_config_noqa_and_baseline(repo):
    repo.write("pyproject.toml", '[tool.pt2jax]\nexclude = ["legacy/"]\n')
    (repo.work / "legacy").mkdir()
    repo.write("legacy/old.py", TORCH_FILE)
    repo.write("quiet.py", "import torch  # noqa\n")
    repo.git("add", "pyproject.toml", "legacy/old.py", "quiet.py")
    lint = repo.pre_commit("run", "pt2jax-lint")
    assert lint.returncode == 0, lint.stdout
    fixer = repo.pre_commit("run", "pt2jax-rewrite")
    assert fixer.returncode == 0, fixer.stdout
    assert (repo.work / "legacy" / "old.py").read_text() == TORCH_FILE

    # a baseline through `args`: known findings pass, a new one fails
    repo.write("model.py", TORCH_FILE)
    repo.git("add", "model.py")
    assert subprocess.run([str(PT2JAX), "lint", "model.py", "--write-baseline", "b.json"], cwd=repo.work,
                          env=repo.env, capture_output=True).returncode == 0
    import yaml

    config = yaml.safe_load((repo.work / ".pre-commit-config.yaml").read_text())
    for hook in config["repos"][0]["hooks"]:
        if hook["id"] == "pt2jax-lint":
            hook["args"] = ["--baseline", "b.json"]
    (repo.work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    repo.git("add", ".pre-commit-config.yaml")
    assert repo.pre_commit("run", "pt2jax-lint").returncode == 0
    repo.write("model.py", TORCH_FILE + "y = torch.ones(2)\n")
    repo.git("add", "model.py")
    new = repo.pre_commit("run", "pt2jax-lint")
    assert new.returncode == 1 and "model.py:4:5 PTJ104 torch.ones" in new.stdout
    assert "model.py:3:" not in new.stdout
