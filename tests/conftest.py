import os

# Tests run JAX on the CPU, quietly, and never grab all the memory up front.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pytest  # noqa: E402


@pytest.fixture
def run(tmp_path, monkeypatch):
    """`pt2jax ARGS...` through click's runner, in tmp_path, with its own cache and no colour
    (CI unset, so the outcome does not depend on where the suite runs)."""
    from click.testing import CliRunner

    from pt2jax_migrate.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    runner = CliRunner(env={"PT2JAX_CACHE_DIR": str(tmp_path / ".cache"), "NO_COLOR": "1"})

    def invoke(*args, input=None):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, input=input)

    return invoke
