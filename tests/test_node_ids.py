"""The rewrite's identity tables (rewrite/node_ids.py) keep their nodes alive, so a node made
later can never take a member's id: the rewrite of a file cannot depend on what the process
allocated and freed before (an intermittent "rewrite produced invalid code" on torch's
distributions/kl.py came from a plain set of ids)."""

import gc

import libcst as cst

from pt2jax_migrate.rewrite.node_ids import NodeMap, NodeSet


def _made_and_dropped(table_add):
    """Add a fresh node to a table, drop every reference of ours, then make many nodes of the
    same kind (CPython hands freed memory straight back): none may count as a member."""
    table_add(cst.parse_expression("(a + b)"))
    gc.collect()
    return [cst.parse_expression("(c + d)") for _ in range(2000)]


def test_node_set_is_by_identity_and_keeps_members_alive():
    nodes = NodeSet()
    later = _made_and_dropped(nodes.add)
    assert not any(node in nodes for node in later)
    same = cst.parse_expression("x")
    equal = cst.parse_expression("x")
    nodes.add(same)
    assert same in nodes and equal not in nodes  # libcst nodes compare by value; the set does not
    nodes.discard(same)
    assert same not in nodes


def test_node_map_is_by_identity_and_keeps_keys_alive():
    outputs = NodeMap()
    later = _made_and_dropped(lambda node: outputs.__setitem__(node, frozenset({"loss"})))
    assert not any(node in outputs or outputs.get(node) is not None for node in later)
    call = cst.parse_statement("loss = step(x)\n")
    outputs[call] = frozenset({"loss"})
    assert outputs.get(call) == frozenset({"loss"})
    assert outputs.get(cst.parse_statement("loss = step(x)\n"), ()) == ()
