"""The house's layers: every module imports only from its own layer or those below it, and nothing forms a cycle.

The order is written here once (docs/architecture.md draws it). A package (or, inside serving, a subpackage)
may import from any layer listed before its own and from itself; two packages of the same layer stay
independent of each other. Imports are read from the source with `ast`, so a lazy import inside a function
counts as much as one at the top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. Each entry is one layer; names in one tuple are independent packages of the same layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),  # the typed Settings: the only reader of the environment
    ("features",),  # the data contract, validation, the accounts' history, point-in-time features
    ("policy", "simulator"),  # the pure policy (penalty mapper, queue ranking, spikes); the marketplace simulator
    ("training",),  # fit, evaluate, register, score
    ("serving", "serving.input_checks"),  # the package itself; request bodies checked against the contract, one message per field
    ("serving.store",),  # engines, migrations, transactions, the audit trail
    ("serving.enforcement",),  # the append-only ledger of violations and decisions
    ("serving.market",),  # the marketplace's events: ingestion, the event store, the live history
    ("serving.queue",),  # cases, intake and triage, proactive monitors
    ("serving.scoring",),  # the champion models at work: runtime, reload, batching
    ("serving.console",),  # the investigator console's sessions and pages (its routes are in serving.api.console)
    ("serving.api",),  # the HTTP face: routes, error bodies, authentication
    ("serving.service",),  # the BentoML service that wires it all together
    ("benchmarks",),
    ("cli",),  # the `docket` command line: the top of the house
)
PACKAGES = sorted({name.split(".")[0] for layer in LAYERS for name in layer})


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the layer entry) of the longest entry that is `module` or a package above it."""
    best = None
    for i, layer in enumerate(LAYERS):
        for name in layer:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best[1])):
                best = (i, name)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def imports_of(path: Path) -> set[str]:
    """Every Docket module `path` imports (the deepest module an import statement names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_from_a_layer_above_it_or_beside_it():
    wrong = []
    for module, path in MODULES.items():
        here, mine = layer_of(module)
        for target in imports_of(path):
            there, theirs = layer_of(target)
            if there > here or (there == here and theirs != mine):
                wrong.append(f"{module} imports {target} ({theirs} is not below {mine})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {m: {t for t in imports_of(p) if t != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if t not in graph:
                continue
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else [m, t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_only_the_settings_read_the_environment():
    readers = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            reads = (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
                     and node.value.id == "os") or (isinstance(node, ast.Attribute) and node.attr == "getenv")
            if reads and module != "config.settings":
                readers.append(f"{module}:{node.lineno}")
    assert not readers, f"os.environ read outside config.settings: {readers}"


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The checker itself: an import from a higher layer is named (features importing serving)."""
    assert layer_of("features.build")[0] < layer_of("serving.service")[0]
    probe = tmp_path / "probe.py"
    probe.write_text("from serving.service import Docket\nimport training.train\n")
    assert imports_of(probe) == {"serving.service", "training.train"}
