"""Corpus check: `rewrite --out` and `lint` over real Python files, every file checked.

    python benchmarks/corpus_check.py                     # torch, torchvision, timm, fixtures/
    python benchmarks/corpus_check.py --limit 2000 --jobs 2 --seed 1
    python benchmarks/corpus_check.py --corpus torchvision --corpus timm --limit 60
    python benchmarks/corpus_check.py path/to/tree ...    # any folders or files
    python benchmarks/corpus_check.py --target linen --corpus timm   # the Flax Linen target

For every file (read as text, never imported), through the real API the CLI uses
(`api.rewrite_paths(..., out=...)` and `api.lint_paths`):

* no crash and no internal error: a per-file failure is recorded with the file and the
  reason and the run goes on (the exit code says so);
* the written file parses;
* rewriting the written file again changes nothing (idempotence);
* a file with no PyTorch usage (lint finds nothing) comes back byte for byte identical;
* a BOM, a PEP 263 coding cookie, CRLF line endings, and the file's permission bits are kept;
* residue: every torch construct left in the output carries a `# TODO(pt2jax)` marker
  (core.residue, the independent ast check). Files where the engine left residue for its PTJ920
  safety net to mark are listed as engine gaps (the output is honest, the engine could do better);
* every finding the rewrite reports names a line of the file (its summary is what users act on);
* the comments the residue check reads off the ast (core.comments) are the tokenizer's.

Files Python itself cannot compile are counted (`source not Python`) but are not failures:
rewrite must only refuse them with one line. A file refused with a clear message the tool
documents (over the size limit, an expression nested too deeply for Python's parser once
converted) is counted under `refused` and listed, not hidden.

Prints a summary: files, lines, seconds, lines/s (the whole check: lint + rewrite + second
rewrite + checks), and failures by kind, each with its files (up to --show per kind).
Exit 0 when no file failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import codecs
import importlib.util
import os
import random
import shutil
import signal
import stat
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout: use its package
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_report import Record, summarize  # noqa: E402

CORPORA = ("torch", "torchvision", "timm", "fixtures")

# failure kinds (a file can have several)
INTERNAL = "internal error"
LINT = "lint error"
UNPARSABLE = "output does not parse"
NOT_IDEMPOTENT = "second rewrite changes it"
TORCH_FREE_CHANGED = "torch-free file changed"
ENCODING = "encoding/BOM/line endings lost"
MODE = "permissions changed"
RESIDUE = "unmarked torch residue"
NO_LINE = "a finding names no line"
COMMENTS = "comment scan differs from tokenize"
SAFETY_NET = "engine needed the PTJ920 safety net"
NOT_WRITTEN = "converted but not written"
READ = "readable Python refused"


def corpus_files(name: str) -> list[str]:
    if name == "fixtures":
        return sorted(str(p) for p in (ROOT / "fixtures").rglob("*.py"))
    spec = importlib.util.find_spec(name)  # finds the package without importing it
    if spec is None or spec.origin is None:
        return []
    return sorted(str(p) for p in Path(spec.origin).parent.rglob("*.py"))


def _python_compiles(data: bytes) -> bool:
    try:
        compile(data, "<corpus>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        return True
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False


def _is_refusal(message: str) -> bool:
    return "over the size limit" in message or "too many nested parentheses" in message \
        or "too deeply nested" in message


def _endings(data: bytes) -> tuple[bool, bool]:
    """(has a CRLF, has a bare LF)."""
    crlf = data.count(b"\r\n")
    return crlf > 0, data.count(b"\n") > crlf


def check_file(path: str, target: str = "nnx") -> dict:
    """Every check on one file, lint and rewrite for `target` (nnx, linen); never raises.
    -> {path, lines, seconds, failures: [(kind, why)], state: ok|not-python|refused, changed}"""
    from pt2jax_migrate.api import lint_paths, rewrite_paths
    from pt2jax_migrate.project import LintOptions
    from pt2jax_migrate.core.comments import comment_lines, tokenized_comment_lines
    from pt2jax_migrate.core.residue import NOTE_TAG, RESIDUE_CODE, TODO_TAG, find_residue

    start = time.perf_counter()
    cpu = time.process_time()
    out: dict = {"path": path, "lines": 0, "failures": [], "gaps": [], "state": "ok", "changed": False}
    failures = out["failures"]
    work = tempfile.mkdtemp(prefix="pt2jax-corpus-")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        out["lines"] = data.count(b"\n")
        compiles = _python_compiles(data)
        if not compiles:
            out["state"] = "not-python"
        # lint, as `pt2jax lint` runs it
        try:
            report = lint_paths([path], LintOptions(target=target))
        except Exception as error:  # noqa: BLE001 - lint_paths must turn everything into errors
            failures.append((LINT, f"lint crashed: {type(error).__name__}: {error}"))
            report = None
        lint_findings = None
        if report is not None:
            for error in report.errors:
                if compiles and not _is_refusal(str(error)):
                    failures.append((LINT if "internal error" not in str(error) else INTERNAL, f"lint: {error}"))
            lint_findings = report.findings
        # rewrite --out, as `pt2jax rewrite --out` runs it (a file given directly: helpers inline)
        first_out = os.path.join(work, "first")
        try:
            rewrite_start = time.process_time()
            run = rewrite_paths([path], out=first_out, target=target)
            out["rewrite_cpu"] = time.process_time() - rewrite_start
        except Exception as error:  # noqa: BLE001
            failures.append((INTERNAL, f"rewrite crashed: {type(error).__name__}: {error}"))
            return out
        for error in run.errors:
            message = str(error)
            if not compiles:
                continue  # not Python: one line is the right answer
            if _is_refusal(message):
                out["state"] = "refused"
                out["refusal"] = message
            elif "internal error" in message:
                failures.append((INTERNAL, message))
            elif "cannot read" in message or "not valid" in message or "coding" in message:
                failures.append((READ, message))
            else:
                failures.append((INTERNAL, message))
        if not compiles or out["state"] == "refused" or failures:
            return out
        [file] = run.files
        if file.written is None:
            failures.append((NOT_WRITTEN, "no output file"))
            return out
        with open(file.written, "rb") as handle:
            new = handle.read()
        out["changed"] = new != data
        # encodings, BOM, line endings, permissions
        if data.startswith(codecs.BOM_UTF8) != new.startswith(codecs.BOM_UTF8):
            failures.append((ENCODING, "BOM added or lost"))
        from pt2jax_migrate.fsio import source_encoding

        if source_encoding(data, path) != source_encoding(new, path):
            failures.append((ENCODING, f"encoding {source_encoding(data, path)} -> {source_encoding(new, path)}"))
        crlf, lf = _endings(data)
        new_crlf, new_lf = _endings(new)
        if crlf and not lf and new_lf:
            failures.append((ENCODING, "a CRLF file came back with LF-only lines"))
        if lf and not crlf and new_crlf:
            failures.append((ENCODING, "an LF file came back with CRLF lines"))
        if stat.S_IMODE(os.stat(path).st_mode) != stat.S_IMODE(os.stat(file.written).st_mode):
            failures.append((MODE, f"{oct(stat.S_IMODE(os.stat(path).st_mode))} -> "
                                   f"{oct(stat.S_IMODE(os.stat(file.written).st_mode))}"))
        # parses
        try:
            text = new.decode(source_encoding(new, path)).removeprefix("\ufeff")
            tree = ast.parse(text)
        except (SyntaxError, ValueError, UnicodeDecodeError) as error:
            failures.append((UNPARSABLE, f"{type(error).__name__}: {error}"))
            return out
        # torch-free: byte for byte
        torch_free = lint_findings is not None and not lint_findings
        if torch_free and new != data:
            failures.append((TORCH_FREE_CHANGED, "lint found nothing, yet the output differs"))
        # residue
        assert file.result is not None
        nowhere = [f for f in file.result.findings if f.line < 1]  # a summary line the user cannot find
        if nowhere:
            failures.append((NO_LINE, f"{len(nowhere)} findings, first {nowhere[0].code} {nowhere[0].message}"[:200]))
        if any(f.code == RESIDUE_CODE for f in file.result.findings):  # marked, so honest: a gap, not a failure
            out["gaps"].append((SAFETY_NET, "; ".join(sorted({f.message for f in file.result.findings
                                                             if f.code == RESIDUE_CODE}))[:300]))
        if new != data:
            unmarked = [r for r in find_residue(text, tree) if not r.marked]
            if unmarked:
                failures.append((RESIDUE, "; ".join(f"{r.line}: {r.what}" for r in unmarked[:5])))
            # the residue check reads comments off the ast (core.comments): as the tokenizer would
            tags = (TODO_TAG, NOTE_TAG)
            if comment_lines(text, tree, tags) != tokenized_comment_lines(text, tags):
                failures.append((COMMENTS, "core.comments.comment_lines != tokenized_comment_lines"))
        # idempotence: rewrite the output again
        second_out = os.path.join(work, "second")
        try:
            again = rewrite_paths([file.written], out=second_out, target=target)
        except Exception as error:  # noqa: BLE001
            failures.append((INTERNAL, f"second rewrite crashed: {type(error).__name__}: {error}"))
            return out
        if again.errors:
            failures.append((NOT_IDEMPOTENT, f"second rewrite: {again.errors[0]}"))
        elif again.files[0].written is None:
            failures.append((NOT_IDEMPOTENT, "second rewrite wrote nothing"))
        else:
            with open(again.files[0].written, "rb") as handle:
                twice = handle.read()
            if twice != new:
                first_diff = next((i for i, (a, b) in enumerate(zip(new.splitlines(), twice.splitlines()), 1)
                                   if a != b), min(new.count(b"\n"), twice.count(b"\n")) + 1)
                failures.append((NOT_IDEMPOTENT, f"first difference at output line {first_diff}"))
        return out
    except BaseException as error:  # noqa: BLE001 - the checker itself must not stop the run
        if isinstance(error, KeyboardInterrupt):
            raise
        failures.append((INTERNAL, f"checker: {type(error).__name__}: {error}"))
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
        out["seconds"] = time.perf_counter() - start
        out["cpu"] = time.process_time() - cpu


def _max_bytes(specs: list[str]) -> dict[str | None, int]:
    """--max-bytes N (every file) or CORPUS=N (that corpus's files) -> {corpus or None: N}."""
    limits: dict[str | None, int] = {}
    for spec in specs:
        name, _, size = spec.rpartition("=")
        limits[name or None] = int(size)
    return limits


def select(paths: list[str], corpora: list[str], limit: int, seed: int | None,
           max_bytes: dict[str | None, int] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """(the files to check, the files skipped as over --max-bytes with their sizes). The
    sources are interleaved (so that a run cut short by --budget or Ctrl-C has checked a fair
    share of each)."""
    max_bytes = max_bytes or {}
    groups: list[tuple[str | None, list[str]]] = []
    for path in paths:
        p = Path(path)
        groups.append((None, sorted(str(f) for f in p.rglob("*.py")) if p.is_dir() else [str(p)]))
    for name in corpora:
        groups.append((name, corpus_files(name)))
    keyed: dict[str, float] = {}
    skipped: list[tuple[str, int]] = []
    for name, group in groups:
        cap = max_bytes.get(name, max_bytes.get(None))
        if cap is not None:
            sizes = {f: os.path.getsize(f) for f in group if os.path.isfile(f)}
            skipped += sorted((f, size) for f, size in sizes.items() if size > cap)
            group = [f for f in group if sizes.get(f, 0) <= cap]
        for index, file in enumerate(group):
            keyed.setdefault(file, (index + 0.5) / len(group))
    files = sorted(keyed, key=lambda f: (keyed[f], f))
    if limit and len(files) > limit:
        if seed is None:  # an even slice, deterministic
            step = len(files) / limit
            files = [files[int(i * step)] for i in range(limit)]
        else:
            chosen = set(random.Random(seed).sample(files, limit))
            files = [f for f in files if f in chosen]
    return files, skipped


def _run(files: list[str], jobs: int, each, target: str = "nnx") -> None:
    """check_file on every file in `jobs` processes, `each(result)` as each one finishes (any
    order: one file at a time per worker, so a run stopped early keeps everything finished)."""
    if jobs <= 1:
        for file in files:
            each(check_file(file, target))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending = {pool.submit(check_file, file, target) for file in files}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                each(future.result())
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # our own workers, by handle
            process.terminate()
        raise
    pool.shutdown(wait=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="folders or files (default: the --corpus packages)")
    parser.add_argument("--corpus", action="append", choices=CORPORA,
                        help="an installed package's sources or fixtures/ (repeatable; default: all four "
                             "when no paths are given)")
    parser.add_argument("--limit", type=int, default=0, help="check at most N files (an even slice; 0: all)")
    parser.add_argument("--seed", type=int, default=None, help="with --limit: a random sample with this seed")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--budget", type=float, default=0,
                        help="stop after this many seconds and summarise the files checked (0: no limit)")
    parser.add_argument("--show", type=int, default=10, help="files listed per failure kind")
    parser.add_argument("--max-bytes", action="append", default=[], metavar="[CORPUS=]N",
                        help="skip files over N bytes (all, or one --corpus's); counted and listed in "
                             "the summary (repeatable)")
    parser.add_argument("--report", metavar="PATH",
                        help="append one JSON line per file to PATH as it finishes, and the summary to "
                             "PATH.summary.txt")
    parser.add_argument("--resume", action="store_true",
                        help="with --report: keep the files already in it and check only the rest")
    parser.add_argument("--smallest-first", action="store_true",
                        help="check the files in order of size (a run short of time checks the most files)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    parser.add_argument("--target", choices=("nnx", "linen"), default="nnx",
                        help="the JAX API lint judges for and rewrite writes (default: nnx)")
    args = parser.parse_args(argv)
    corpora = args.corpus or ([] if args.paths else list(CORPORA))
    files, skipped = select(args.paths, corpora, args.limit, args.seed, _max_bytes(args.max_bytes))
    if not files:
        print("no files found", file=sys.stderr)
        return 1
    record = Record(args.report, args.resume)
    results: list[dict] = [r for r in record.earlier if r["path"] in set(files)]
    todo = [f for f in files if f not in record.done()]
    if args.smallest_first:
        todo.sort(key=os.path.getsize)
    if record.earlier:
        print(f"resumed: {len(results)} files already in {args.report}, {len(todo)} to check",
              file=sys.stderr, flush=True)
    start = time.perf_counter()

    def progress(result: dict) -> None:
        results.append(result)
        record.add(result)
        done = len(results)
        if not args.quiet and (done % 50 == 0 or done == len(files)):
            print(f"  {done}/{len(files)} files, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        for kind, why in result["failures"]:
            print(f"FAIL {result['path']}: {kind}: {why[:300]}", file=sys.stderr, flush=True)
        if args.budget and time.perf_counter() - start > args.budget and done < len(files):
            raise KeyboardInterrupt  # run_jobs stops its workers cleanly

    interrupted = False
    # `kill PID` stops it like Ctrl-C: the workers are stopped and the files checked are summarised
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        _run(todo, max(1, args.jobs), progress, args.target)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        record.close()
        signal.signal(signal.SIGTERM, previous)
    text, failed = summarize(results, time.perf_counter() - start, args.jobs, args.show, skipped)
    text = f"target: {args.target}\n" + text
    if interrupted:
        text = f"STOPPED EARLY (--budget or Ctrl-C): {len(results)} of {len(files)} files checked\n" + text
    print(text)
    if args.report:
        with open(args.report + ".summary.txt", "w", encoding="utf-8") as handle:
            handle.write(" ".join(["corpus_check.py", *(argv if argv is not None else sys.argv[1:])]) + "\n")
            handle.write(text + "\n")
    return 1 if failed or interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
