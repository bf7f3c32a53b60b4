"""core.comments finds comments off the ast (the residue check's speed): its answers must be
tokenize's on every text, the odd ones above all. Compared with the tokenizer here on texts
built to confuse a `#` scan; the corpus check compares them on real files too."""

from __future__ import annotations

import ast

import pytest

from pt2jax_migrate.core.comments import comment_lines, tokenized_comment_lines

TAGS = ("TODO(pt2jax)", "NOTE(pt2jax)")

CASES = {
    "hash in strings": 'x = "# TODO(pt2jax): not a comment"  # TODO(pt2jax): PTJ1 a comment\ny = \'#\'\n',
    "tag only in a string": 's = "TODO(pt2jax)"  # plain comment\n',
    "f-string": 'x = f"{a}#{b!r:>{w}}"  # NOTE(pt2jax): kept\nf"""\n# not a comment {x}\n"""\n',
    "docstring": 'def f():\n    """Doc.\n\n    # TODO(pt2jax): inside the docstring\n    """\n    # TODO(pt2jax): PTJ2 real\n    return 1\n',
    "escaped triple quotes": 's = """a \\""" # still a string\n# TODO(pt2jax): inside too\n"""  # TODO(pt2jax): after\n',
    "raw escaped": "s = r'''x \\''' # in\n'''  # TODO(pt2jax): out\n",
    "implicit concatenation with comments between": (
        'msg = (\n    "first # part"\n    # TODO(pt2jax): between the pieces\n    "second"  # NOTE(pt2jax): after\n)\n'),
    "concatenated triple quoted": 'x = ("""a\n# in\n""" # TODO(pt2jax): between\n  """b\n""")\n',
    "bytes and prefixes": "a = rb'#'; b = Br\"#\"  # TODO(pt2jax): c\nc = u'#'\n",
    "non-ascii before a string": 'x = ("é", "#")  # TODO(pt2jax): after unicode\n# TODO(pt2jax): alone\n',
    "crlf": 'x = 1  # TODO(pt2jax): a\r\n# NOTE(pt2jax): b\r\ns = """\r\n# in\r\n"""\r\n',
    "lone carriage returns": 'x = 1  # TODO(pt2jax): a\r# b\ry = "#"\r',
    "comment only lines in brackets": 'f(\n    1,\n    # TODO(pt2jax): arg\n    2,  # trailing\n)\n',
    "form feed and tabs": '\f# TODO(pt2jax): after a form feed\nif x:\n\t# tab\n\tpass\n',
    "no hash": 'x = 1\n',
    "hash in nested f-string expression": 'x = f"{d[\'#\']}"  # TODO(pt2jax): c\n',
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_lines_as_the_tokenizer(name):
    source = CASES[name]
    assert comment_lines(source, ast.parse(source), TAGS) == tokenized_comment_lines(source, TAGS)


def test_finds_what_it_should():
    source = CASES["implicit concatenation with comments between"]
    tagged, comment_only = comment_lines(source, ast.parse(source), TAGS)
    assert tagged == {"TODO(pt2jax)": {3}, "NOTE(pt2jax)": {4}} and comment_only == {3}
    source = CASES["docstring"]
    tagged, comment_only = comment_lines(source, ast.parse(source), TAGS)
    assert tagged["TODO(pt2jax)"] == {6} and comment_only == {6}
