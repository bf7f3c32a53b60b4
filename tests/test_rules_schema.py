"""The rules tables are validated on load: a misspelt key, a wrong type, an unknown named
transform or a missing required key is a TableError naming the file and the entry."""

from __future__ import annotations

import re
import shutil

import pytest

from pt2jax_migrate import rules_schema
from pt2jax_migrate.mapping import ARG_TRANSFORMS, COMPUTED, check_call, make_arg
from pt2jax_migrate.rules import TableError, load_rules, rules_dir


@pytest.fixture
def tables(tmp_path):
    """A private copy of rules/ and an editor: edit(file, old, new) replaces the first `old`."""
    directory = tmp_path / "rules"
    shutil.copytree(rules_dir(), directory)

    def edit(stem: str, old: str, new: str) -> None:
        path = directory / f"{stem}.toml"
        text = path.read_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1))

    edit.dir = directory
    return edit


def load_error(directory) -> str:
    with pytest.raises(TableError) as info:
        load_rules(directory)
    return str(info.value)


def test_the_shipped_tables_load_and_a_copy_loads_the_same(tables):
    default = load_rules()
    copy = load_rules(tables.dir)
    assert copy is not default
    assert [r.names for r in copy.entries] == [r.names for r in default.entries]
    assert load_rules() is default  # cached
    assert isinstance(TableError("x"), ValueError)


def test_misspelt_target_key_is_rejected_naming_file_entry_and_the_right_key(tables):
    tables("layers", 'init = "linear"', 'inti = "linear"')
    message = load_error(tables.dir)
    assert f"{tables.dir / 'layers.toml'}:" in message
    assert "[[layer]] torch.nn.Linear" in message
    assert "[layer.nnx] unknown key 'inti'" in message and "did you mean 'init'?" in message


def test_misspelt_source_key_is_rejected(tables):
    tables("functional", 'signature = ["input", "inplace"]', 'signatur = ["input", "inplace"]')
    message = load_error(tables.dir)
    assert "functional.toml" in message and "[[function]] torch.relu" in message
    assert "unknown key 'signatur'" in message and "did you mean 'signature'?" in message


def test_key_on_the_wrong_side_says_where_it_belongs(tables):
    tables("layers", 'kind = "module"\nsignature = ["in_features"',
           'kind = "module"\ntarget = "nnx.Linear"\nsignature = ["in_features"')
    message = load_error(tables.dir)
    assert "torch.nn.Linear" in message and "'target' describes the target side" in message
    assert "[layer.nnx]" in message


def test_key_of_another_entry_kind_is_rejected(tables):
    tables("layers", 'kind = "module"\nsignature = ["in_features"',
           'kind = "module"\nmodule_signature = []\nsignature = ["in_features"')
    assert "key not used by [[layer]] entries: 'module_signature'" in load_error(tables.dir)


@pytest.mark.parametrize(("stem", "old", "new", "expected"), [
    ("layers", "ndim = 1", 'ndim = "1"', ["torch.nn.Conv1d", "ndim: expected integer, got str '1'"]),
    ("layers", 'ignore = ["device"]', 'ignore = "device"', ["torch.nn.Linear", "ignore: expected list of string"]),
    ("layers", 'kind = "module"', 'kind = "modul"', ["torch.nn.Linear", "'modul' is not one of module, function, container"]),
    ("tensor_methods", "rewrite_only_keywords = true", 'rewrite_only_keywords = "yes"',
     ["[[method]] sum", "rewrite_only_keywords: expected true/false"]),
    ("layers", "{ torch = \"bias\", to = \"bias\" }", "{ torch = \"bias\", to = 1 }",
     ["torch.nn.Linear", "weights: item 2: to: expected string, got int 1"]),
    ("lint", 'fix = "safe"', 'fix = "sometimes"', ["lint.toml", "[[rule]] PTJ001", "'sometimes' is not one of safe"]),
])
def test_wrong_type_is_rejected(tables, stem, old, new, expected):
    tables(stem, old, new)
    message = load_error(tables.dir)
    assert f"{stem}.toml" in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(("stem", "old", "new", "expected"), [
    ("layers", 'transform = "ntuple"', 'transform = "ntupel"',
     ["torch.nn.Conv1d", "unknown argument transform 'ntupel' (did you mean 'ntuple'?)"]),
    ("layers", 'transform = "transpose"', 'transform = "transposed"',
     ["torch.nn.Linear", "unknown weight transform 'transposed'"]),
    ("layers", 'compute = { padding = "conv_transpose_padding" }', 'compute = { padding = "conv_padding" }',
     ["torch.nn.ConvTranspose1d", "unknown computed keyword 'conv_padding'"]),
    ("layers", 'init = "linear"', 'init = "xavier"', ["torch.nn.Linear", "unknown initialiser 'xavier'"]),
    ("layers", 'helpers = ["ConvNCHW"]', 'helpers = ["ConvNHWC"]', ["torch.nn.Conv1d", "unknown helper 'ConvNHWC'"]),
])
def test_unknown_named_transform_is_rejected(tables, stem, old, new, expected):
    tables(stem, old, new)
    message = load_error(tables.dir)
    for part in expected:
        assert part in message, message


def test_missing_required_key_is_rejected(tables):
    linear = 'torch = ["torch.nn.Linear", "torch.nn.NonDynamicallyQuantizableLinear"]\n'
    tables("layers", linear + 'code = "PTJ102"\n', linear)
    message = load_error(tables.dir)
    assert "layers.toml" in message and "torch.nn.Linear" in message and "required key 'code' is missing" in message


def test_weight_without_destination_is_rejected(tables):
    tables("layers", '{ torch = "bias", to = "bias" }', '{ torch = "bias" }')
    assert "a weight mapping lacks required key 'to'" in load_error(tables.dir)


def test_parameter_not_in_the_signature_is_rejected(tables):
    tables("layers", 'refuse = { dtype = "dtype= is not converted: use', 'refuse = { dtpye = "dtype= is not converted: use')
    message = load_error(tables.dir)
    assert "torch.nn.Linear" in message and "refuse names 'dtpye'" in message and "did you mean 'dtype'?" in message


def test_template_key_that_can_never_be_selected_is_rejected(tables):
    tables("functional", '"dim,input" = "(jnp.{name}', '"input,dim" = "(jnp.{name}')
    message = load_error(tables.dir)
    assert "torch.max" in message and "templates key 'input,dim' is never selected" in message


def test_unknown_key_in_a_rules_target_doc_is_rejected(tables):
    tables("lint", 'instead = "import jax.numpy as jnp\\nfrom flax import linen"', 'instaed = "x"')
    message = load_error(tables.dir)
    assert "PTJ001" in message and "linen: unknown key 'instaed'" in message and "did you mean 'instead'?" in message


def test_unknown_array_of_tables_and_bad_toml_are_rejected(tables):
    tables("lint", "[[rule]]", "[[rules]]")
    tables("lint", "[rule.linen]", "[rules.linen]")  # its Linen doc goes with it
    assert "lint.toml: unknown table [[rules]] (did you mean 'rule'?)" in load_error(tables.dir)
    (tables.dir / "layers.toml").write_text("[[layer]\n")
    assert "layers.toml" in load_error(tables.dir)


def test_entry_without_a_target_sub_table_has_no_mapping_for_it(tables):
    layers = tables.dir / "layers.toml"
    text = layers.read_text()
    # drop torch.nn.Tanh's [layer.nnx] sub-table: the entry stays (lint still knows the construct)
    text, count = re.subn(r'(torch = "torch.nn.Tanh"\n(?:.*\n)*?)\[layer\.nnx\]\ntarget = "jnp.tanh"\n', r"\1", text)
    assert count == 1
    layers.write_text(text)
    rules = load_rules(tables.dir)
    tanh = rules.by_name["torch.nn.Tanh"]
    assert not tanh.supports() and tanh.side() == {} and tanh.get("target") is None
    assert check_call(tanh, [], {}, "torch.nn.Tanh") == "no nnx mapping in the rules tables"
    relu = rules.by_name["torch.nn.ReLU"]
    assert relu.supports("nnx") and relu.get("target") == "jax.nn.relu" and relu.side()["target"] == "jax.nn.relu"
    assert check_call(relu, [], {}, "torch.nn.ReLU") is None


def test_rule_reads_source_keys_at_the_top_and_target_keys_in_the_sub_table():
    linear = load_rules().by_name["torch.nn.Linear"]
    assert "target" not in linear.raw and "signature" in linear.raw
    assert linear.get("signature")[0] == "in_features" and linear.get("init") == "linear"
    assert linear.get("weights") == linear.side("nnx")["weights"]
    rprop = load_rules().by_name["torch.optim.Rprop"]  # refused: no target side at all
    assert rprop.status == "refused" and not rprop.supports()
    assert check_call(rprop, [make_arg("p")], {}, "torch.optim.Rprop").startswith("Rprop (sign-based")
    dropout = load_rules().by_name["torch.nn.functional.dropout"]  # a literal p > 0 is refused (refuse_literal)
    assert check_call(dropout, [make_arg("x"), make_arg("0.1")], {}, "torch.nn.functional.dropout") \
        .startswith("F.dropout needs")
    assert check_call(dropout, [make_arg("x"), make_arg("0.0")], {}, "torch.nn.functional.dropout") is None


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="unknown target 'haiku'"):
        load_rules(target="haiku")


def test_named_transform_registries_match_their_implementations():
    pytest.importorskip("numpy")
    from pt2jax_migrate.verify.transfer import TRANSFORMS

    assert set(TRANSFORMS) == set(rules_schema.WEIGHT_TRANSFORMS)
    assert set(ARG_TRANSFORMS) | {"consumed"} == set(rules_schema.ARG_TRANSFORMS)
    assert set(COMPUTED) == set(rules_schema.COMPUTED)


def test_every_key_the_tables_use_is_documented_once():
    """The reference lists each key once, and every key it lists is used by some entry."""
    reference = rules_schema.describe()
    used = set()
    for rule in load_rules().entries:
        used |= set(rule.raw) | set(rule.side())
    for name in rules_schema.KEYS:
        assert len(re.findall(rf"^  {name}\b", reference, flags=re.M)) == 1, name
    assert used == set(rules_schema.KEYS)
