"""The package's shape (docs/architecture.md): the engine at the bottom, the studies above it, the course
above them and the command line on top. Each floor imports only what lies below it (or beside it on its own
floor), no module imports another that imports it back, at the top of the file or inside a function,
nothing imports the command line, and only the course and the command line name the course's folders."""
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
    """module -> the minilm modules it imports; the packages it sits in are left out (`from . import x` runs
    their __init__, which imports nothing of theirs at the top)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: sorted(m for m in imports_of(path) if m in modules and m != name and not name.startswith(m + "."))
            for name, path in modules.items()}


def test_no_import_circles_inside_minilm():
    edges, state, path = graph(), {}, []

    def visit(name):  # depth-first search; a module met again while on the path closes a circle
        state[name] = "on path"
        path.append(name)
        for other in edges[name]:
            assert state.get(other) != "on path", "import circle: " + " -> ".join(path[path.index(other):] + [other])
            if other not in state:
                visit(other)
        path.pop()
        state[name] = "done"

    for name in edges:
        if name not in state:
            visit(name)


DATA_FLOOR_MODULES = {"minilm.tokenizer"}  # the engine's one module that belongs with the data: text -> ids


def floor(name):
    """engine (minilm/*.py and the package), data (minilm/data/ and the tokenizer), studies, course, or cli
    (__main__)."""
    parts = name.split(".")
    if name == "minilm.__main__":
        return "cli"
    if name in DATA_FLOOR_MODULES:
        return "data"
    return parts[1] if len(parts) > 1 and parts[1] in ("data", "studies", "course") else "engine"


# floor -> what its modules may import (besides their own floor); the data floor only errors (no model, no loader)
ALLOWED = {"engine": {"engine", "data"}, "studies": {"engine", "data", "studies"},
           "course": {"engine", "data", "studies", "course"}, "cli": {"engine", "data", "studies", "course"}}
DATA_MAY_IMPORT = {"minilm", "minilm.errors"}


def test_each_floor_imports_only_the_floors_below_it():
    wrong = []
    for name, targets in graph().items():
        for target in targets:
            if floor(name) == "data":
                allowed = target in DATA_MAY_IMPORT or floor(target) == "data"
            else:
                allowed = floor(target) in ALLOWED[floor(name)]
            if not allowed:
                wrong.append(f"{name} ({floor(name)}) imports {target} ({floor(target)})")
    assert wrong == []


def test_the_data_floor_imports_no_model():
    """The tokenizer and minilm/data/ know text and ids, never a model or a model's loader (minilm.pretrained)."""
    assert floor("minilm.tokenizer") == floor("minilm.data.toyworld") == "data"
    wrong = {name: targets for name, targets in graph().items() if floor(name) == "data"
             and any(t in ("minilm.model", "minilm.pretrained", "minilm.checkpoint") for t in targets)}
    assert wrong == {}
    assert graph()["minilm.tokenizer"] == ["minilm.errors"]


def strings_of(path):
    """The string constants of a module, its docstrings left out (they may say where a lesson is)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_only_the_course_and_the_cli_name_the_course_folders():
    """The engine and the studies take paths as arguments; minilm.course.paths says where the course is."""
    naming = [name for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
              if floor(name) in ("engine", "data", "studies")
              and any(word in ("lessons", "exercises") for s in strings_of(path) for word in s.replace("\\", "/").split("/"))]
    assert naming == []


def test_lines_are_at_most_120_characters():
    long = [f"{p.relative_to(PACKAGE.parent)}:{i}" for p in sorted(PACKAGE.rglob("*.py"))
            for i, line in enumerate(p.read_text().splitlines(), 1) if len(line) > 120]
    assert long == []


def test_nothing_imports_the_cli():
    assert [name for name, targets in graph().items() if "minilm.__main__" in targets] == []


def test_each_fused_layer_names_the_kernel_behind_it():
    assert layers.gelu_forward.kernel is kernels.gelu_forward and layers.gelu_forward.plain.__name__ == "gelu_forward"
    assert layers.masked_softmax.kernel is kernels.masked_softmax
    assert optim.adamw_update.kernel is kernels.adamw_update
    assert "minilm.layers" not in graph()["minilm.kernels"]


def string_constants_by_function(path):
    """(the name of the function a string constant sits in, or None at a module's top, the string) of every
    string constant of a module, docstrings included."""
    found = []

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                found.append((function, child.value))
            visit(child, child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function)

    visit(ast.parse(path.read_text()), None)
    return found


def test_no_module_below_the_cli_parses_a_model_reference_from_a_string():
    """A base travels as a record (minilm.base.Base) from the command line down: no module spells the old
    "pretrained:NAME" string, but the one converter that reads it from older checkpoints at the loading edge."""
    spelled = {(module_name(p), function) for p in PACKAGE.rglob("*.py") if module_name(p) != "minilm.__main__"
               for function, text in string_constants_by_function(p) if "pretrained:" in text}
    assert spelled == {("minilm.checkpoint", "legacy_base")}
    assert not any("pretrained:" in text for _, text in string_constants_by_function(PACKAGE / "__main__.py"))
