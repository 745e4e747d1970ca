"""The layout's rules, checked on the source: only landseg.cli talks to the terminal or exits, and
landseg's modules import each other without a cycle (counting imports inside functions too)."""

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "landseg"


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path, ast.parse(path.read_text(), str(path))


def _is_shim(tree) -> bool:
    """``python -m landseg.<stage>`` shims: a docstring and ``if __name__ == "__main__": <cli>.run()``."""
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.If) and "__main__" in ast.unparse(body[0].test)


def test_only_the_cli_prints_or_exits():
    offenders = []
    for name, path, tree in _modules():
        if name.startswith("landseg.cli"):
            continue
        # a module's `if __name__ == "__main__":` guard is a command entry (python -m), not library code
        guarded = {id(n) for g in tree.body if isinstance(g, ast.If) and "__main__" in ast.unparse(g.test)
                   for n in ast.walk(g)}
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Call):
                f = ast.unparse(node.func)
                if f in ("print", "sys.exit", "exit", "quit", "os._exit"):
                    offenders.append(f"{path.relative_to(PKG.parent)}:{node.lineno}: {f}()")
    assert not offenders, "library code must return or raise, not print or exit:\n" + "\n".join(offenders)


# Known cycles still to untie; a new cycle fails this test. (Empty: the geo <-> inference and
# data.io <-> geo.raster cycles were untied by inference.progress and data.io.read_scene.)
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_no_import_cycle():
    modules = {name: tree for name, _, tree in _modules()}
    graph = {}
    for name, tree in modules.items():
        deps = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                if t in modules and t != name and not name.startswith(t + "."):
                    deps.add(t)
        graph[name] = deps
    # a package's __init__ re-exporting its own submodules is not a cycle
    for name in graph:
        graph[name] = {d for d in graph[name] if not (d.startswith(name + ".") and name in modules)}
    cycles, state = [], {}

    def visit(n, stack):
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    cycles = [c for c in cycles if frozenset(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_stage_shims_are_thin():
    for stage in ("train", "lr_find", "evaluate", "predict", "pseudolabel", "self_train"):
        tree = ast.parse((PKG / f"{stage}.py").read_text())
        assert _is_shim(tree), f"landseg/{stage}.py should only hand over to landseg.cli.{stage}"


def _strings(tree):
    """The string constants of a module, its docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


RUN_FOLDER_FILES = ("best.keras", "last.keras", "model_info.json", "config.yaml", "history.csv", "state.json",
                    "hist_reference.npy", "run.lock")


def test_run_folder_file_names_have_one_owner():
    """Each run-folder file name appears in a string (docstrings aside) of one module only: landseg.runs.folder;
    every other stage reaches the files through RunFolder."""
    where: dict[str, set[str]] = {n: set() for n in RUN_FOLDER_FILES}
    for name, _, tree in _modules():
        for text in _strings(tree):
            for file_name in RUN_FOLDER_FILES:
                if re.search(r"(?<![\w.-])" + re.escape(file_name), text):
                    where[file_name].add(name)
    assert where == {n: {"landseg.runs.folder"} for n in RUN_FOLDER_FILES}


def test_library_messages_name_no_command_line_flags():
    """Library code words errors in its own option names (``tile``); only landseg.cli shows flags (``--tile``),
    through landseg.errors.OptionError. Commands named as advice (``pip install --no-deps ...``) are fine."""
    allowed = re.compile(r"pip install|python -m|landseg (data check|predict|train|evaluate)|\bgit\b")
    found = []
    for name, _, tree in _modules():
        if name.startswith("landseg.cli"):
            continue
        for text in _strings(tree):
            if re.search(r"(^|\s)--[a-z]", text) and not allowed.search(text):
                found.append(f"{name}: {text[:60]!r}")
    assert found == []
