"""What a job's results depend on in the code, as one short hash: a parameter of every rule, so
that Snakemake reruns a job when, and only when, an edit changes the code the job runs.

A file counts by its syntax tree without docstrings: comments, docstrings and formatting rerun
nothing. A registry module (the models, the pixel corruptions, the datasets, the figures)
counts without its entries and the functions only they name; a job adds the entries it reads,
each with the modules it names as "module:callable". So editing one model's module reruns that
model's runs, registering an entry reruns nothing that exists, and an edit to the training
loop reruns every training job. An entry not found in the registry's source (built in a loop,
or registered from another module) puts the whole registry module in: more reruns, never fewer.
Reads the source only: planning imports no torch.
"""

import ast
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from rethink.workflow.sources import PACKAGE, module_file, package_modules

# The package's registries: the module that holds each, and the name it is bound to there.
REGISTRIES = {
    "rethink.models": "MODELS",
    "rethink.data.variants": "PIXEL_CORRUPTIONS",
    "rethink.data.datasets": "DATASETS",
    "rethink.results.catalog": "FIGURES",
}
_NAMED_CALLABLE = re.compile(rf"(?P<module>{PACKAGE}(\.\w+)*):\w+")
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def code_fingerprint(script: str | Path, entries: dict[str, str] | None = None) -> str:
    """The hash of the file `script` and the package code it runs, reading one entry of each
    registry module in `entries` ({module: key}, e.g. {"rethink.models": "alexnet"}; a key of
    None: none of that registry's entries)."""
    read = tuple(sorted((m, k) for m, k in (entries or {}).items() if k is not None))
    return _fingerprint(Path(script), read)


@functools.cache
def _fingerprint(script: Path, entries: tuple[tuple[str, str], ...]) -> str:
    parts = [_tree_text(script)]
    modules = package_modules(script)
    whole = set()  # registry modules whose entry was not found
    for module, key in entries:
        entry = _registry(module).entries.get(key)
        if entry is None:
            whole.add(module)
            modules |= _with_imports(module)
            continue
        parts.append(f"{module}[{key!r}] {entry.text}")
        for named in entry.modules:
            modules |= _with_imports(named)
    for module, path in sorted(modules.items()):
        registry = module in REGISTRIES and module not in whole
        parts.append(f"{module} {_registry(module).rest if registry else _tree_text(path)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _with_imports(module: str) -> dict[str, Path]:
    """The package's `module` and the package modules it imports: {dotted name: file}."""
    return {module: module_file(module)} | package_modules(module_file(module))


@functools.cache
def _tree_text(path: Path) -> str:
    return _dump(_parse(path))


def _parse(path: Path) -> ast.Module:
    """The file's syntax tree without docstrings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, *_DEFINITIONS)) and _is_docstring(node.body[0]):
            node.body = node.body[1:] or [ast.Pass()]
    return tree


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False)  # no positions: formatting does not count


@dataclass(frozen=True)
class Entry:
    text: str  # the entry's expression and the module's functions it names
    modules: frozenset[str]  # the package modules it names as "module:callable"


@dataclass(frozen=True)
class Registry:
    rest: str  # the module without its entries and the functions only they name
    entries: dict[str, Entry]


@functools.cache
def _registry(module: str) -> Registry:
    tree, name = _parse(module_file(module)), REGISTRIES[module]
    definitions = {node.name: node for node in tree.body if isinstance(node, _DEFINITIONS)}
    values, rest = {}, []
    for statement in tree.body:
        found = _entries_set_by(statement, name)
        if found is None:
            rest.append(statement)
        else:
            values |= found
    entries, named = {}, set()
    for key, value in values.items():
        names = sorted(
            {node.id for node in ast.walk(value) if isinstance(node, ast.Name)} & definitions.keys()
        )
        named.update(names)
        modules = {
            match["module"]
            for node in ast.walk(value)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            if (match := _NAMED_CALLABLE.fullmatch(node.value))
        }
        text = " ".join([_dump(value), *(_dump(definitions[n]) for n in names)])
        entries[key] = Entry(text, frozenset(modules))
    rest = [s for s in rest if not (isinstance(s, _DEFINITIONS) and s.name in named)]
    return Registry(_dump(ast.Module(body=rest, type_ignores=[])), entries)


def _entries_set_by(statement: ast.stmt, name: str) -> dict[str, ast.expr] | None:
    """{key: value expression} of the registry entries `statement` sets, if it sets only
    entries of `name` (`NAME = {...}`, `NAME: T = {...}`, `NAME["key"] = value`), else None."""
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target, value = statement.targets[0], statement.value
    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
        target, value = statement.target, statement.value
    else:
        return None
    if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Dict):
        keys = [_text_constant(key) for key in value.keys]
        return None if None in keys else dict(zip(keys, value.values, strict=True))
    if (
        isinstance(target, ast.Subscript)
        and isinstance(target.value, ast.Name)
        and target.value.id == name
        and (key := _text_constant(target.slice)) is not None
    ):
        return {key: value}
    return None


def _text_constant(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None
