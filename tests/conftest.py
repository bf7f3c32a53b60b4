import os
import tempfile

# Tests run JAX on the CPU, quietly, and never grab all the memory up front.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's LLVM backend at -O0: the suite compiles thousands of small programs (every eager op, every
# layer's init, each jitted model) and runs each a few times, so compiling is most of its time;
# -O0 cuts that by about a quarter. The HLO passes (fusion, simplification) are unchanged; only
# LLVM's optimisation of the generated machine code is skipped (not checked to be bit-identical:
# the parity checks compare against torch with their usual tolerances and all pass). Inherited by
# the subprocesses tests start (verify's children, the benchmarks).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# JAX's persistent compilation cache, shared by both workers and every verify child: the same
# small programs (each eager op at each shape, the fixture models) are compiled in hundreds of
# processes. Keyed by the program, the XLA flags and the jax/jaxlib versions, so a hit is the
# executable a compile would have produced. About 9% less CPU on the verify-heavy tests from an
# empty cache (what CI starts with). Kept per user in the temp folder, outside every test's files
# and the user's own verify cache (~/.cache/pt2jax/jax, which verify's children use otherwise).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"pt2jax-tests-jax-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


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


# The slowest tests (worker seconds, idle 2-core machine, `--durations`), run first: xdist hands
# each worker consecutive tests as it frees up, so a long test collected last (tests/test_w*.py
# sort last) keeps one worker busy after the other has run out of work. Run first, they overlap
# the quick tests. A prefix of the test id; the rest keep their order.
SLOW_FIRST = {
    "tests/test_bench_models.py::": 230,
    "tests/test_weights_linen.py::test_linen_fixture_models_round_trip": 51,
    "tests/test_weights.py::test_fixture_models_round_trip": 41,
    "tests/test_verify_train_programs.py::": 37,
    "tests/test_verify_isolation.py::test_hang_is_stopped": 26,
    "tests/test_verify_isolation.py::test_train_hang": 25,
    "tests/test_fixtures.py::test_verify_passes_on_fixture_models": 17,
    "tests/test_corpus.py::test_corpus_check_script": 17,
    "tests/test_cli.py::test_verify_command_pass_mismatch_and_error": 16,
}


def pytest_collection_modifyitems(config, items):
    def seconds(item) -> int:
        return next((s for prefix, s in SLOW_FIRST.items() if item.nodeid.startswith(prefix)), 0)

    items.sort(key=lambda item: -seconds(item))  # stable: same-cost tests keep their order
