"""Suppressions: `# noqa`, `# noqa: CODES`, file-level `# pt2jax: noqa`, unused ones (PTJ910),
and `--add-noqa`."""

from __future__ import annotations

import ast
import textwrap
import time


from pt2jax_migrate.lint import lint_source
from pt2jax_migrate.suppress import add_noqa, apply


def check(source: str, enabled=None):
    source = textwrap.dedent(source)
    outcome = apply("t.py", source, lint_source(source, "t.py"), enabled)
    return [(f.line, f.code) for f in outcome.findings], outcome.suppressed


# ----------------------------------------------------------------------------- line noqa


def test_noqa_with_codes_bare_and_prefixes():
    found, suppressed = check("""\
        import torch  # noqa: PTJ001
        a = torch.zeros(3)  # noqa: PTJ104
        b = torch.zeros(3)  # noqa
        c = torch.zeros(3)  # NoQA:PTJ1
        d = torch.zeros(3).to("cpu")  # noqa: PTJ104 the device move stays reported
        e = torch.zeros(3)  # noqa: E501
        f = torch.zeros(3)  # noqa:PTJ302,PTJ104
        g = torch.zeros(3)  # noqa: PTJ302 PTJ104
        """)
    assert found == [(5, "PTJ302"), (6, "PTJ104"), (7, "PTJ910"), (8, "PTJ910")]
    assert suppressed == 7


def test_noqa_counts_on_the_line_of_the_finding_in_multiline_statements():
    found, _ = check("""\
        import torch  # noqa
        x = torch.cat(  # noqa: PTJ103
            [torch.zeros(3),
             torch.ones(3)],  # noqa: PTJ104
        )
        """)
    assert found == [(3, "PTJ104")]  # line 4's noqa covers line 4's torch.ones only


def test_noqa_text_inside_strings_is_not_a_comment_for_unused_reports():
    found, _ = check('''\
        import torch  # noqa
        DOC = "x = 1  # noqa: PTJ104"
        TEXT = """
        # pt2jax: noqa
        y = 2  # noqa: PTJ102
        """
        ''')
    assert found == []  # the file-level text in the string suppresses nothing either


# ----------------------------------------------------------------------------- file level


def test_file_level_directives():
    assert check("""\
        # pt2jax: noqa
        import torch
        x = torch.zeros(3)
        """) == ([], 2)
    found, suppressed = check("""\
        import torch
        x = torch.zeros(3).to("cpu")
        y = torch.fft.fft(x)

        # pt2jax: noqa: PTJ1,PTJ302
        """)
    assert found == [(1, "PTJ001"), (3, "PTJ901")] and suppressed == 2
    # a trailing comment counts too, and case does not matter
    assert check("import torch\nx = torch.zeros(3)  # PT2JAX: NOQA: PTJ0\n") == ([(2, "PTJ104")], 1)


def test_unused_file_level_directives_are_reported():
    assert check("# pt2jax: noqa\nimport json\nx = 'torch'\n") == ([(1, "PTJ910")], 0)
    found, _ = check("# pt2jax: noqa: PTJ104, PTJ3\nimport torch\nx = torch.zeros(3)\n")
    assert found == [(1, "PTJ910"), (2, "PTJ001")]
    source = "# pt2jax: noqa: PTJ3\nimport torch\n"
    message = apply("t.py", source, lint_source(source)).findings[0].message
    assert "PTJ3" in message and "file" in message


def test_unused_noqa_in_a_converted_file_is_found():
    # a file that no longer mentions torch still gets its stale PTJ suppressions reported
    found, _ = check("import jax.numpy as jnp\nx = jnp.zeros(3)  # noqa: PTJ104\n")
    # lint_source returns nothing for a torch-free file; the suppression pass still looks
    assert found == [(2, "PTJ910")]


def test_unused_noqa_respects_selection_and_its_own_suppression():
    source = "import torch\nx = 1  # noqa: PTJ104, E501\n"
    assert check(source) == ([(1, "PTJ001"), (2, "PTJ910")], 0)
    assert check(source, {"PTJ001"}) == ([(1, "PTJ001")], 0)  # PTJ910 not selected
    assert check(source, {"PTJ001", "PTJ910"}) == ([(1, "PTJ001")], 0)  # PTJ104 not judged
    assert check("import torch\nx = 1  # noqa: PTJ104, PTJ910\n")[0] == [(1, "PTJ001")]
    assert check("# pt2jax: noqa: PTJ9\nimport torch\nx = 1  # noqa: PTJ104\n")[0] == [(2, "PTJ001")]
    message = apply("t.py", source, lint_source(source)).findings[1]
    assert message.col == 8 and message.fix == "manual" and not message.fixable
    assert "PTJ104" in message.message and "E501" not in message.message


def test_suppression_adds_no_parse_to_a_file_without_noqa(monkeypatch):
    source = "import torch\n" + "x = torch.zeros(3)\n" * 2000
    findings = lint_source(source, "t.py")
    calls = []
    monkeypatch.setattr(ast, "parse", lambda *a, **k: calls.append(1))
    import tokenize
    monkeypatch.setattr(tokenize, "generate_tokens", lambda *a, **k: calls.append(1))
    start = time.perf_counter()
    outcome = apply("t.py", source, findings)
    assert time.perf_counter() - start < 0.05 and calls == [] and len(outcome.findings) == 2001


# ----------------------------------------------------------------------------- --add-noqa


def test_add_noqa_appends_merges_and_skips_string_continuations():
    source = textwrap.dedent('''\
        import torch\r
        a = torch.zeros(3)   \r
        b = torch.zeros(3).cuda()  # noqa: E501\r
        c = torch.zeros(3)  # a comment\r
        d = torch.tensor("""x\r
        y""")\r
        e = torch.zeros(3) + \\\r
            torch.ones(3)\r
        ''')
    result = add_noqa(source, {1: {"PTJ001"}, 2: {"PTJ104"}, 3: {"PTJ104", "PTJ302"}, 4: {"PTJ104"},
                               5: {"PTJ104"}, 7: {"PTJ104"}, 8: {"PTJ104"}})
    lines = result.source.split("\r\n")
    assert lines[0] == "import torch  # noqa: PTJ001"
    assert lines[1] == "a = torch.zeros(3)  # noqa: PTJ104"
    assert lines[2] == "b = torch.zeros(3).cuda()  # noqa: E501, PTJ104, PTJ302"
    assert lines[3] == "c = torch.zeros(3)  # a comment  # noqa: PTJ104"
    assert lines[4] == 'd = torch.tensor("""x'  # ends inside a string: skipped
    assert lines[6] == "e = torch.zeros(3) + \\"  # backslash continuation: skipped
    assert lines[7] == "    torch.ones(3)  # noqa: PTJ104"
    assert result.added == 5
    assert [line for line, _ in result.skipped] == [5, 7]
    assert "multi-line string" in result.skipped[0][1] and "backslash" in result.skipped[1][1]
    ast.parse(result.source)
    # nothing left to add the second time
    again = add_noqa(result.source, {1: {"PTJ001"}, 2: {"PTJ104"}})
    assert again.added == 0 and again.source == result.source


def test_cli_add_noqa_suppresses_everything_in_place(run, tmp_path):
    model = tmp_path / "m.py"
    model.write_text('import torch\nx = torch.zeros(3)\ny = torch.fft.fft(x)  # noqa: E501\ns = torch.tensor("""a\nb""")\n')
    result = run("lint", "--add-noqa", model)
    assert result.exit_code == 0
    assert "Added 3 noqa directives to 1 file." in result.stderr
    assert f"{model}:4: no noqa added: the line ends inside a multi-line string" in result.stderr
    text = model.read_text()
    assert "x = torch.zeros(3)  # noqa: PTJ104\n" in text and "# noqa: E501, PTJ901\n" in text
    after = run("lint", model)
    assert after.exit_code == 1  # only the string-continuation line is left
    assert [line.split()[1] for line in after.stdout.splitlines()[:-1]] == ["PTJ104"]
    assert "4:5" in after.stdout
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name]
    assert run("lint", "--add-noqa", "--fix", model).exit_code == 2
