"""The package's modules a script runs, found by following its imports in the source, without
importing anything: what a job's code fingerprint covers (rethink.workflow.fingerprints), and
what its conda environment must provide (tests/test_envs.py).
"""

import ast
import functools
import importlib.util
import os
from pathlib import Path

PACKAGE = "rethink"


def imported_names(path: Path) -> set[str]:
    """Dotted names of everything imported anywhere in `path`, function bodies included, but
    not under `if TYPE_CHECKING:` (never run); for `from a import b`, both `a` and `a.b` (b may
    be a module)."""
    names = set()
    for node in _run_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from rethink.results import figures` imports a module; `from rethink import X`
            # may not
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _run_nodes(tree: ast.AST):
    """Every node of `tree` except those of `if TYPE_CHECKING:` blocks."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def _imported_modules(path: Path) -> set[str]:
    """Names of the package's modules imported anywhere in `path`."""
    return {n for n in imported_names(path) if n == PACKAGE or n.startswith(PACKAGE + ".")}


@functools.cache
def _package_root() -> Path:
    return Path(importlib.util.find_spec(PACKAGE).origin).parent


def module_file(name: str) -> Path | None:
    """The file of the package's module `name`, found on disk without importing anything
    (importing a module to find its submodules would import torch while Snakemake plans);
    None where `name` is a class or function, not a module."""
    path = _package_root().joinpath(*name.split(".")[1:])
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _named_by_registry(name: str) -> set[str]:
    """Modules a registry names as "module:function" rather than imports: code that builds a
    model (imports rethink.models.build_model) runs one of the models' modules, code that draws
    a catalog figure (imports rethink.results.catalog.FIGURES) one of the drawing modules."""
    if name == "rethink.models.build_model":
        from rethink.models import MODELS  # torch-free, as planning needs

        return {spec.builder.partition(":")[0] for spec in MODELS.values()}
    if name == "rethink.results.catalog.FIGURES":
        from rethink.results.catalog import FIGURES

        return {figure.draw.partition(":")[0] for figure in FIGURES.values()}
    return set()


def package_modules(path: str | os.PathLike, registries: bool = False) -> dict[str, Path]:
    """The package's modules that running the file `path` imports, directly or through each
    other, with the __init__ of every package on the way: {dotted name: file}. With
    `registries`, also every module a registry it reads names (whichever entry runs)."""
    seen: dict[str, Path] = {}
    todo = list(_imported_modules(Path(path)))
    while todo:
        name = todo.pop()
        if registries:
            todo.extend(_named_by_registry(name) - seen.keys())
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            file = module_file(prefix)
            if file is None:
                continue
            seen[prefix] = file
            todo.extend(_imported_modules(file))
    return seen


def package_sources(script: str | os.PathLike) -> list[str]:
    """The package's .py files that running `script` may import, whichever registry entries it
    runs; sorted, relative to the working directory where they lie below it."""
    return sorted(workdir_relative(p) for p in package_modules(script, registries=True).values())


def workdir_relative(path: str | os.PathLike) -> str:
    """`path` relative to the working directory where it lies below it, else absolute."""
    path, cwd = Path(path).resolve(), Path.cwd().resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
