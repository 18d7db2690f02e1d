"""The import graph of gan_runner flows one way: config -> registry -> data/models -> train step
-> evaluation -> tracker -> the commands. Every module sits in a declared layer and imports only
from lower layers (imports inside functions count too: a lazy import upward is still upward), so
there is no import loop. Imports are read with ast; nothing is imported."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gan_runner"

# Lowest first. A module may import modules of strictly lower layers only (names ending in ".*"
# cover a package's submodules). Inside a package its facade (__init__) sits above its modules.
LAYERS: list[list[str]] = [
    ["gan_runner", "gan_runner.errors"],
    ["gan_runner.models.losses", "gan_runner.models.ema", "gan_runner.models.spectral", "gan_runner.models.precision"],
    [
        "gan_runner.faults",
        "gan_runner.startup",
        "gan_runner.host_work",
        "gan_runner.seeds",
        "gan_runner.labels",
        "gan_runner.stopping",
        "gan_runner.progress",
        "gan_runner.plots",
        "gan_runner.optim",
        "gan_runner.config.schema",
        "gan_runner.metrics.image",
        "gan_runner.metrics.univariate",
        "gan_runner.data.images",
        "gan_runner.models.gan",
        "gan_runner.bench.common",
        "gan_runner.metrics",
        "gan_runner.models",
        "gan_runner.bench",
    ],
    ["gan_runner.registry", "gan_runner.data.datasets", "gan_runner.store"],
    ["gan_runner.data", "gan_runner.config.checks", "gan_runner.distribute"],
    ["gan_runner.config", "gan_runner.metrics.classifier"],
    ["gan_runner.models.gaussian1d", "gan_runner.models.dcgan", "gan_runner.tracking"],
    ["gan_runner.models.cdcgan"],  # the DCGAN's networks and judge, conditioned
    ["gan_runner.checkpoint"],
    ["gan_runner.sweep"],
    ["gan_runner.train"],
    ["gan_runner.evaluate", "gan_runner.compare", "gan_runner.ui"],
    ["gan_runner.sample", "gan_runner.__main__"],
    [
        "gan_runner.bench.gaussian1d",
        "gan_runner.bench.sweep",
        "gan_runner.bench.dcgan",
        "gan_runner.bench.quality",
        "gan_runner.bench.techniques",
        "gan_runner.bench.cond",
        "gan_runner.bench.gpu",
    ],
    ["gan_runner.bench.__main__"],
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The gan_runner modules `name` imports anywhere in its body (`from pkg import sub` counts
    as importing pkg.sub when that is a module, else pkg)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = subs if len(subs) == len(node.names) else [base, *subs]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import gan_runner.x.y` of a name inside x.y
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def layer_of(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise KeyError(name)


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    missing = sorted(name for name in modules() if not any(name in layer for layer in LAYERS))
    assert not missing, f"add these modules to LAYERS in {__file__}: {missing}"


def test_no_import_loops():
    assert loops(graph()) == []


def test_imports_only_go_down():
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, targets in sorted(graph().items())
        for target in sorted(targets)
        if layer_of(target) >= layer_of(name) and not name.startswith(f"{target}.")
    ]
    assert not upward, "\n".join(upward)


def test_the_checker_sees_a_loop_and_an_upward_import():
    """The checks above can fail: a made-up graph with a loop and an upward edge."""
    assert loops({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    known = modules()
    train = imports("gan_runner.train", known["gan_runner.train"], known)
    assert "gan_runner.sweep" in train and layer_of("gan_runner.sweep") < layer_of("gan_runner.train")
    assert layer_of("gan_runner.train") > layer_of("gan_runner.checkpoint")


def test_nothing_below_train_knows_the_tracker_and_no_model_knows_hydra():
    """The rules DESIGN.md states beside the layers: below train.py only tracking.py and
    sweep.py talk to the tracker; models are plain builders."""
    known, tracker_layer = modules(), layer_of("gan_runner.train")
    talkers = ("gan_runner.tracking", "gan_runner.sweep")  # the tracker itself; a multirun's parent run
    below = [name for name in known if layer_of(name) < tracker_layer and name not in talkers]
    assert "gan_runner.checkpoint" in below
    for name in below:
        assert "gan_runner.tracking" not in imports(name, known[name], known), name
    for name in (n for n in known if n.startswith("gan_runner.models")):
        assert not re.search(r"^\s*(import|from) hydra", known[name].read_text(), re.M), name


FRESH_IMPORTS = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "gan_runner" or m.startswith("gan_runner.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
print("\\n".join(failed))
"""


def test_every_module_imports_first_on_its_own():
    """Each module imported first, with no other gan_runner module loaded: catches a loop that
    runs through a package's __init__ (implicit in `import pkg.sub`), which the ast graph above
    does not see. One process; third-party modules stay loaded between the imports."""
    names = sorted(n for n in modules() if not n.endswith("__main__"))
    out = subprocess.run([sys.executable, "-c", FRESH_IMPORTS, *names], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr[-2000:]
