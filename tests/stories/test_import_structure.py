"""How the stories app's models, importing and images modules import each other: each on its own in a fresh
interpreter, with every import at the top of its module, no cycle among them, and importing never reaching
into images (the pipeline calls one after the other)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKED = [ROOT / "stories" / "models.py", *sorted((ROOT / "stories" / "importing").glob("*.py"))]
CHECKED += sorted((ROOT / "stories" / "images").glob("*.py"))

# Imports the module before anything else of the stories app, at the moment Django loads the app's models
# (the first moment a model may be defined), then lets Django carry on.
IMPORT_FIRST = """
import importlib, sys
from stories.apps import StoriesConfig

load_models = StoriesConfig.import_models


def import_module_first(app_config):
    already = sorted(name for name in sys.modules if name.startswith("stories.") and name != "stories.apps")
    assert not already, f"imported before {sys.argv[1]}: {already}"
    importlib.import_module(sys.argv[1])
    load_models(app_config)


StoriesConfig.import_models = import_module_first
import django

django.setup()
"""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every stories module `path` imports, wherever the import statement stands."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("stories.") and name != module_name(path)}


def stories_import_graph() -> dict[str, set[str]]:
    paths = [path for path in (ROOT / "stories").rglob("*.py") if "migrations" not in path.parts]
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path) & modules for path in paths}


def modules_on_a_cycle(graph: dict[str, set[str]], start: str) -> list[str]:
    """The modules through which `start` imports itself again, or [] when it never does."""
    trail: list[str] = []
    seen: set[str] = set()

    def visit(module: str) -> bool:
        for imported in sorted(graph.get(module, ())):
            if imported == start:
                return True
            if imported not in seen:
                seen.add(imported)
                trail.append(imported)
                if visit(imported):
                    return True
                trail.pop()
        return False

    return [start, *trail, start] if visit(start) else []


@pytest.mark.parametrize("path", CHECKED, ids=module_name)
def test_module_imports_on_its_own_in_a_fresh_interpreter(path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "newsreader.settings", "PYTHONPATH": str(ROOT)}

    result = subprocess.run(
        [sys.executable, "-c", IMPORT_FIRST, module_name(path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("path", CHECKED, ids=module_name)
def test_module_imports_only_at_its_top(path):
    body = ast.parse(path.read_text()).body
    statements = body[1:] if body and isinstance(body[0], ast.Expr) else body  # after the docstring
    leading = 0
    while leading < len(statements) and isinstance(statements[leading], ast.Import | ast.ImportFrom):
        leading += 1
    later = [
        node.lineno
        for statement in statements[leading:]
        for node in ast.walk(statement)
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]

    assert later == [], f"{module_name(path)} imports below its top, at lines {later}"


@pytest.mark.parametrize("path", CHECKED, ids=module_name)
def test_module_is_on_no_import_cycle(path):
    assert modules_on_a_cycle(stories_import_graph(), module_name(path)) == []


def test_importing_never_imports_the_image_step():
    graph = stories_import_graph()

    reached = {
        f"{module} -> {imported}"
        for module, imports in graph.items()
        if module.startswith("stories.importing")
        for imported in imports
        if imported.startswith("stories.images")
    }

    assert reached == set()


def test_a_cycle_is_found_when_there_is_one():
    graph = {"stories.a": {"stories.b"}, "stories.b": {"stories.c"}, "stories.c": {"stories.a"}, "stories.d": set()}

    assert modules_on_a_cycle(graph, "stories.a") == ["stories.a", "stories.b", "stories.c", "stories.a"]
    assert modules_on_a_cycle(graph, "stories.d") == []
