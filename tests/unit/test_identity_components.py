"""Connected components of an identity graph (jobs/identity/components.py): the in-memory and
the distributed engines give the same components, labelled by their smallest node id."""

import random

import pyarrow as pa
import pytest

from jobs.identity.components import (
    components_distributed,
    components_in_memory,
    connected_components,
)


def _reference(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Union-find, the smallest id as each component's label."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in list(parent)}


def _graph(seed: int) -> list[tuple[str, str]]:
    """Stars, a long chain, small cliques, isolated pairs, a self-loop and duplicate edges, with
    ids of unequal lengths (string order, not numeric: "n10" < "n9")."""
    rng = random.Random(seed)
    edges = [(f"chain:{i}", f"chain:{i + 1}") for i in range(60)]
    edges += [("hub", f"leaf:{i}") for i in range(30)]
    for c in range(15):
        members = [f"clique{c}:{i}" for i in range(rng.randint(2, 6))]
        edges += [(a, b) for a in members for b in members if a < b]
    edges += [(f"n{rng.randint(0, 400)}", f"n{rng.randint(0, 400)}") for _ in range(300)]
    edges += [("alone", "alone"), ("hub", "leaf:3"), ("leaf:3", "hub")]
    rng.shuffle(edges)
    return edges


def _as_dict(rows) -> dict[str, str]:
    return {r["node"]: r["component"] for r in rows}


@pytest.mark.parametrize("seed", [1, 2])
def test_both_engines_find_the_components_union_find_finds(spark, seed):
    edges = _graph(seed)
    expected = _reference(edges)
    arrow = pa.table({"src": [a for a, _ in edges], "dst": [b for _, b in edges]})
    assert _as_dict(components_in_memory(arrow).to_pylist()) == expected
    frame = spark.createDataFrame(arrow)
    assert _as_dict(components_distributed(frame).collect()) == expected


def test_the_edge_count_chooses_the_engine_and_the_answer_is_the_same(spark):
    edges = [("b", "a"), ("c", "b"), ("x", "y"), ("z", "z")]
    frame = spark.createDataFrame(edges, "from_id string, to_id string")
    by_engine = [
        _as_dict(
            connected_components(
                frame, max_in_memory_edges=limit, src="from_id", dst="to_id"
            ).collect()
        )
        for limit in (len(edges), len(edges) - 1)  # in memory, then distributed
    ]
    assert (
        by_engine[0] == by_engine[1] == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x", "z": "z"}
    )


def test_no_edges_no_components(spark):
    empty = pa.table({"src": pa.array([], pa.string()), "dst": pa.array([], pa.string())})
    assert components_in_memory(empty).num_rows == 0
    assert components_distributed(spark.createDataFrame(empty)).count() == 0
