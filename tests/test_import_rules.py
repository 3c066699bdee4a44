"""No import cycle between modules of the package, each one found named in full.

`lint-imports` (pyproject `[tool.importlinter]`, run by `make lint`) keeps the arrows
between packages pointing one way; its `acyclic_siblings` contract names a cycle by
the package import it would drop. This test names the modules themselves: a cycle is
what forces a function-level import to dodge an ImportError at start-up, and the
module path is what the person who added it has to read to break it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping
from itertools import pairwise

import grimp
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.properties import examples

PACKAGE = "edge_controller"


def import_cycles(imports: Mapping[str, Collection[str]]) -> list[tuple[str, ...]]:
    """One cycle through each group of modules that import each other, shortest first.

    A group is a strongly connected component of the import graph (Tarjan's algorithm,
    iterative: the package is deeper than Python's recursion limit allows for); each
    is shown as the shortest cycle from its first module in sorted order back to it,
    e.g. `("a", "b", "a")`. Modules outside `imports`' keys are leaves.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[set[str]] = []
    for root in sorted(imports):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(imports.get(root, ())))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, pending = work[-1]
            if pending:
                imported = pending.pop()
                if imported not in index:
                    index[imported] = low[imported] = len(index)
                    stack.append(imported)
                    on_stack.add(imported)
                    work.append((imported, sorted(imports.get(imported, ()))))
                elif imported in on_stack:
                    low[module] = min(low[module], index[imported])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
            if low[module] == index[module]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == module:
                        break
                if len(group) > 1 or module in imports.get(module, ()):
                    groups.append(group)
    cycles = [_shortest_cycle(imports, group) for group in groups]
    return sorted(cycles, key=lambda cycle: (len(cycle), cycle))


def _shortest_cycle(imports: Mapping[str, Collection[str]], group: set[str]) -> tuple[str, ...]:
    start = min(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(imports.get(module, ())):
            if imported == start:
                path = [module]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return (start, *reversed(path[:-1]), start)
            if imported in group and imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    raise AssertionError(f"{sorted(group)} is not a cycle")  # a group always is one


def package_imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (at any level of
    the file: in functions and under TYPE_CHECKING too, as `lint-imports` counts them)."""
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    cycles = import_cycles(package_imports())
    assert not cycles, "import cycles (break each at one arrow):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_the_package_graph_holds_imports_made_inside_functions() -> None:
    # The cycle test above is only as good as the graph: one without the imports made
    # inside functions would pass a cycle that such a lazy import hides at run time.
    imports = package_imports()
    # `build_server` imports the server only when the subcommand runs.
    assert (
        "edge_controller.servers.dispatch.server"
        in imports["edge_controller.servers.dispatch.command"]
    )


def test_a_cycle_is_named_from_its_first_module() -> None:
    imports = {
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.a", "pkg.leaf"},
        "pkg.a": {"pkg.b", "pkg.leaf"},
        "pkg.x": {"pkg.y"},
        "pkg.y": {"pkg.x"},
    }
    assert import_cycles(imports) == [
        ("pkg.x", "pkg.y", "pkg.x"),
        ("pkg.a", "pkg.b", "pkg.c", "pkg.a"),
    ]
    assert import_cycles({"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.leaf"}}) == []


def test_the_shortest_way_round_is_shown() -> None:
    # a -> b -> c -> d -> a, with a shortcut c -> a: the group is the four, the
    # cycle shown is the shortest one from a.
    imports = {"a": {"b"}, "b": {"c"}, "c": {"d", "a"}, "d": {"a"}}
    assert import_cycles(imports) == [("a", "b", "c", "a")]


_MODULES = [f"m{number}" for number in range(8)]


@st.composite
def _forward_graphs(draw: st.DrawFn) -> dict[str, set[str]]:
    """Graphs whose arrows all point to a later module: never a cycle."""
    return {
        module: set(draw(st.lists(st.sampled_from(_MODULES[position + 1 :]), max_size=3)))
        if position + 1 < len(_MODULES)
        else set()
        for position, module in enumerate(_MODULES)
    }


@settings(max_examples=examples(500))
@given(
    graph=_forward_graphs(), back=st.tuples(st.sampled_from(_MODULES), st.sampled_from(_MODULES))
)
def test_one_arrow_back_along_a_path_makes_the_cycle_found(
    graph: dict[str, set[str]], back: tuple[str, str]
) -> None:
    assert import_cycles(graph) == []
    early, late = sorted(back)
    reachable = _reachable(graph, early)
    graph[late].add(early)
    cycles = import_cycles(graph)
    if late in reachable:
        assert len(cycles) == 1
        cycle = cycles[0]
        assert cycle[0] == cycle[-1]
        assert {early, late} <= set(cycle)
        assert all(b in graph[a] for a, b in pairwise(cycle))
    else:
        assert cycles == []


def _reachable(graph: Mapping[str, Collection[str]], start: str) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for imported in graph.get(queue.popleft(), ()):
            if imported not in seen:
                seen.add(imported)
                queue.append(imported)
    return seen
