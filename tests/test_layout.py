"""The package's layout as docs/development.md draws it, and the import rules between its
subpackages, read from the source without importing it."""

import re

import pytest

from rethink.workflow.sources import imported_names
from tests.conftest import REPO

PACKAGE = REPO / "rethink"


def module_name(path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def package_imports(name: str) -> set[str]:
    """The package's modules that importing `name` runs, itself included."""
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if prefix in MODULES and prefix not in seen:
                seen.add(prefix)
                todo.extend(imported_names(MODULES[prefix]))
    return seen


def third_party_imports(name: str) -> set[str]:
    return {
        imported.split(".")[0]
        for module in package_imports(name)
        for imported in imported_names(MODULES[module])
        if not imported.startswith("rethink")
    }


def documented_layout() -> dict[str, set[str]]:
    """{"" (the top level) or a subpackage: the modules the layout names in it}."""
    text = REPO.joinpath("docs/development.md").read_text().split("## Layout", 1)[1]
    block = text.split("```")[1]
    entries: dict[str, str] = {}
    current = None
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("rethink/"))
    for line in lines[start + 1 :]:
        if not line.startswith(" "):  # the next top-level folder: the package ends
            break
        if match := re.match(r"  (\w+)(/|\.py) +(.*)", line):
            current = match[1] if match[2] == "/" else ""
            entries.setdefault(current, "")
            if match[2] == ".py":
                entries[""] += f", {match[1]}"
            else:
                entries[current] += match[3]
        elif current:  # a continuation line
            entries[current] += " " + line.strip()
    return {
        package: {m.strip() for m in _modules_listed(listed) if m.strip()}
        for package, listed in entries.items()
    }


def _modules_listed(description: str) -> list[str]:
    """The names after the last colon of a folder's description, notes in parentheses aside."""
    return re.sub(r"\([^)]*\)", "", description).rsplit(":", 1)[-1].split(",")


def registered_model_modules() -> set[tuple[str, str]]:
    """(subpackage, module) of each model module a registry entry names: a user's own
    (docs/extending.md) among them."""
    from rethink.models import MODELS

    return {tuple(spec.builder.partition(":")[0].split(".")[1:]) for spec in MODELS.values()}


def test_the_layout_names_every_module_where_it_lies():
    """Every module the layout names lies where it says, and every module of the tree is named,
    except model modules a registry entry names: a user who adds a model need not edit it."""
    in_tree: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            folder = path.relative_to(PACKAGE).parts[:-1]
            in_tree.setdefault(folder[0] if folder else "", set()).add(path.stem)
    documented, registered = documented_layout(), registered_model_modules()
    for package, modules in in_tree.items():
        listed = documented.get(package, set())
        assert listed <= modules, f"{package or 'rethink'}: the layout names {listed - modules}"
        unlisted = {m for m in modules - listed if (package, m) not in registered}
        assert not unlisted, f"{package or 'rethink'}: the layout omits {sorted(unlisted)}"
    assert documented.keys() <= in_tree.keys()


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not m.startswith("rethink.workflow"))
)
def test_only_the_workflow_imports_the_workflow_subpackage(module):
    workflow = {m for m in package_imports(module) if m.startswith("rethink.workflow")}
    assert not workflow, f"{module} imports {sorted(workflow)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("rethink.data")))
def test_the_data_stage_imports_no_later_stage(module):
    later = ("rethink.training", "rethink.memorization", "rethink.results", "rethink.models")
    assert not {m for m in package_imports(module) if m.startswith(later)}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("rethink.results")))
def test_results_read_tables_without_torch(module):
    assert not third_party_imports(module) & {"torch", "torchvision"}


def test_the_tests_mirror_the_package():
    """tests/<subpackage>/test_<module>.py, or test_<subpackage>.py for its __init__."""
    for test_file in REPO.joinpath("tests").glob("*/test_*.py"):
        package, module = test_file.parent.name, test_file.stem.removeprefix("test_")
        name = f"rethink.{package}" + ("" if module == package else f".{module}")
        assert name in MODULES, f"{test_file.relative_to(REPO)} mirrors no module of the package"
