"""Run each side of a verify in its own child process (verify --timeout, --memory-limit).

`Isolation` starts one long-lived child per side (verify/child.py: the torch one imports
torch, the JAX one jax, in parallel) in a new process group, and calls the side's methods
(verify/sides.py) over pipes; the replies are numpy arrays and plain data, unpickled here with
only numpy, builtins and verify's own data classes allowed, so this process never imports the
user's code (nor torch or jax). While it waits for a reply it watches:

* the deadline (`timeout` seconds for the whole verify): a child still busy is asked for its
  Python stack (SIGUSR1, faulthandler), then its process group is killed; the VerifyError
  names the side, what it was doing and the innermost line of the user's file on that stack;
* the child's peak resident memory (VmHWM in /proc, polled every 50 ms) against
  `memory_limit` bytes: over it, the same, with the figure (an address-space rlimit is not
  used: XLA reserves far more virtual memory than it touches);
* the child's death (os._exit, a segfault, a kill): the exit status or signal and, for a
  fatal signal, the user's line from faulthandler's dump.

On leaving the `with` block every child's process group is killed, whatever happened, so no
process is left behind. `Local` runs a side in this process instead (the library default).
"""

from __future__ import annotations

import io
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .child import read_message, write_message
from .report import VerifyError

POLL = 0.05
DEFAULT_TIMEOUT = 600.0


def default_memory_limit() -> int | None:
    """Half the machine's memory per side (None when unknown)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * size // 2 if pages > 0 and size > 0 else None


class _Unpickler(pickle.Unpickler):
    """Only numpy, builtins and verify's data classes: a reply cannot import the user's code."""

    _ALLOWED = ("numpy", "builtins", "collections", "copyreg", "_codecs",
                "pt2jax_migrate.verify.report", "pt2jax_migrate.verify.transfer",
                "pt2jax_migrate.verify.torchtree", "pt2jax_migrate.verify.train_report")

    def find_class(self, module: str, name: str):
        if module.split(".")[0] in ("numpy",) or module in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a verify child sent a {module}.{name}, which is not plain data")


def _loads(payload: bytes):
    return _Unpickler(io.BytesIO(payload)).load()


class Local:
    """A side run in this process: the same calls, no isolation."""

    def __init__(self, side, label: str) -> None:
        self.side, self.label, self.timings = side, label, {}
        self._result = None

    def start(self, method: str, *args, doing: str = "", **kwargs) -> None:
        """Run the call now; its result, or what it raised, comes out of finish()."""
        try:
            self._result = (True, getattr(self.side, method)(*args, **kwargs))
        except BaseException as exc:  # raised by finish(), in the order a Child's would be
            self._result = (False, exc)

    def finish(self):
        (ok, result), self._result = self._result, None
        self.timings.update(self.side.take_timings())
        if not ok:
            raise result
        return result

    def call(self, method: str, *args, doing: str = "", **kwargs):
        self.start(method, *args, doing=doing, **kwargs)
        return self.finish()

    def close(self) -> None:
        self.side.reset()


class Child(Local):
    """A side in a child process (see the module docstring)."""

    def __init__(self, side_name: str, label: str, paths: tuple[str, ...], group: Isolation) -> None:
        self.label, self.paths, self.group, self.timings = label, paths, group, {}
        self.doing = "starting"
        fd, self.dump = tempfile.mkstemp(prefix=f"pt2jax-verify-{side_name}-", suffix=".txt")
        os.close(fd)
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pt2jax_migrate.verify.child", side_name, str(cmd_r), str(res_w), self.dump],
            stdin=subprocess.DEVNULL, pass_fds=(cmd_r, res_w), start_new_session=True, env=env)
        os.close(cmd_r)
        os.close(res_w)

    def start(self, method: str, *args, doing: str = "", **kwargs) -> None:
        self.doing = doing or method
        try:
            write_message(self.cmd_w, pickle.dumps((method, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
        except BrokenPipeError:
            raise self._died() from None

    def finish(self):
        while True:
            ready, _, _ = select.select([self.res_r], [], [], POLL)
            if ready:
                try:
                    reply = _loads(read_message(self.res_r))
                except EOFError:
                    raise self._died() from None
                break
            self.group.check(self)
        self.group.check(self)  # a peak between two polls still counts
        kind = reply[0]
        if kind == "ok":
            self.timings.update(reply[2])
            return reply[1]
        if kind == "error":
            raise VerifyError(reply[1])
        raise VerifyError(f"{self.label} failed while {self.doing}: {reply[1]}")

    def peak_memory(self) -> int:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        found = re.search(r"^VmHWM:\s*(\d+)\s*kB", text, re.M)
        return int(found.group(1)) * 1024 if found else 0

    def _where(self) -> str:
        """The innermost line of the user's files on the stacks faulthandler dumped (it lists
        the most recent call first)."""
        try:
            text = Path(self.dump).read_text(errors="replace")
        except OSError:
            return ""
        frames = re.findall(r'File "([^"]*)", line (\d+)', text)
        for same in (lambda f, p: f == p or f.endswith("/" + p),
                     lambda f, p: os.path.basename(f) == os.path.basename(p)):
            for filename, line in frames:
                path = next((p for p in self.paths if same(filename, p)), None)
                if path is not None:
                    return f" at {path}:{line}"
        return ""

    def stop_with_stack(self) -> str:
        """Ask for the child's stack, kill its group; the user's line, if on the stack."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass
            time.sleep(0.3)
        self.kill()
        return self._where()

    def _died(self) -> VerifyError:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return VerifyError(f"{self.label} stopped answering while {self.doing}{self.stop_with_stack()}")
        if code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        self.kill()
        return VerifyError(f"{self.label} died while {self.doing}: {how}{self._where()}")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        # Killed, not asked to exit: every reply is in, the child flushed the user's prints
        # before each, and a JAX process takes a second or more to tear down. The group goes:
        # anything the user's code started goes too.
        self.kill()
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.unlink(self.dump)
        except OSError:
            pass


class Isolation:
    """`with Isolation(timeout, memory_limit) as iso: torch, jax = iso.sides(original, converted)`."""

    def __init__(self, timeout: float | None = DEFAULT_TIMEOUT, memory_limit: int | None = None) -> None:
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.deadline = None if not timeout else time.monotonic() + timeout
        self.children: list[Child] = []

    def child(self, side_name: str, label: str, *paths: str) -> Child:
        """A child serving verify/child.py's SIDE `side_name`, running the user's `paths`."""
        child = Child(side_name, label, paths, self)
        self.children.append(child)
        return child

    def sides(self, original: str, converted: str) -> tuple[Child, Child]:
        return (self.child("torch", f"the torch side ({original})", original),
                self.child("jax", f"the JAX side ({converted})", converted))

    def check(self, waiting: Child) -> None:
        """Raise a VerifyError (and kill the child) past the deadline or over the memory limit,
        naming the child `waiting` is for on a timeout."""
        for child in self.children:
            if self.memory_limit and child.proc.poll() is None:
                used = child.peak_memory()
                if used > self.memory_limit:
                    where = child.stop_with_stack()
                    raise VerifyError(
                        f"{child.label} used {used / 2**20:.0f} MB while {child.doing}{where}, over the "
                        f"memory limit of {self.memory_limit / 2**20:.0f} MB (--memory-limit); stopped")
        if self.deadline is not None and time.monotonic() > self.deadline:
            where = waiting.stop_with_stack()
            raise VerifyError(f"{waiting.label} timed out after {self.timeout:g} s while {waiting.doing}{where} "
                              "(--timeout); stopped")

    def __enter__(self) -> Isolation:
        return self

    def __exit__(self, *exc) -> None:
        for child in self.children:
            child.close()


@contextmanager
def open_sides(original: str, converted: str, *, isolate: bool, timeout: float | None = None,
               memory_limit: int | None = None) -> Iterator[tuple[Local, Local]]:
    """(torch side, JAX side) of a model verify: each in its own child (`isolate`, within
    `timeout` seconds and `memory_limit` bytes), else both in this process; closed on exit."""
    if isolate:
        with Isolation(DEFAULT_TIMEOUT if timeout is None else timeout, memory_limit) as iso:
            yield iso.sides(original, converted)
        return
    from .sides import JaxSide, TorchSide

    sides = (Local(TorchSide(), f"the torch side ({original})"), Local(JaxSide(), f"the JAX side ({converted})"))
    try:
        yield sides
    finally:
        for side in sides:
            side.close()


def call_isolated(side_name: str, label: str, paths: tuple[str, ...], method: str, *args,
                  timeout: float | None = None, memory_limit: int | None = None, doing: str = "",
                  timings: dict | None = None, **kwargs):
    """One call of `method` on a fresh child's SIDE (verify --train: "train"), within `timeout`
    seconds and `memory_limit` bytes (the child's `timings` go into `timings`); the child is
    gone on return."""
    with Isolation(DEFAULT_TIMEOUT if timeout is None else timeout, memory_limit) as iso:
        child = iso.child(side_name, label, *paths)
        try:
            return child.call(method, *args, doing=doing, **kwargs)
        finally:
            if timings is not None:
                timings.update(child.timings)
