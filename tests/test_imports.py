"""The package's shape: one direction of dependency (DESIGN.md: backend <- layers <- model <- train <-
experiments <- plots <- CLI), so no module imports another that imports it back, at the top of the file
or inside a function, and nothing imports the CLI."""
import ast
import pathlib

import minilm
from minilm import kernels, layers, optim

PACKAGE = pathlib.Path(minilm.__file__).parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path):
    """The minilm modules a file imports anywhere in it (relative or absolute, `from . import x` too)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import layers`
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def graph():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: sorted(m for m in imports_of(path) if m in modules and m != name) for name, path in modules.items()}


def test_no_import_circles_inside_minilm():
    edges, state, path = graph(), {}, []

    def visit(name):  # depth-first search; a module met again while on the path closes a circle
        state[name] = "on path"
        path.append(name)
        for other in edges[name]:
            if other == "minilm":  # the package's __init__ (imported by every `from . import x`)
                continue
            assert state.get(other) != "on path", "import circle: " + " -> ".join(path[path.index(other):] + [other])
            if other not in state:
                visit(other)
        path.pop()
        state[name] = "done"

    for name in edges:
        if name not in state:
            visit(name)


def test_nothing_imports_the_cli():
    assert [name for name, targets in graph().items() if "minilm.__main__" in targets] == []


def test_each_fused_layer_names_the_kernel_behind_it():
    assert layers.gelu_forward.kernel is kernels.gelu_forward and layers.gelu_forward.plain.__name__ == "gelu_forward"
    assert layers.masked_softmax.kernel is kernels.masked_softmax
    assert optim.adamw_update.kernel is kernels.adamw_update
    assert "minilm.layers" not in graph()["minilm.kernels"]
