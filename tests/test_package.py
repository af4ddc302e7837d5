"""The shape of the package, read from its source: the import layering of the sub-packages, no import cycle between
modules, no ``monai.bundle`` import, and an ``engines`` sub-package that holds only Ignite engines and batch
preparation.

The import graph is built with :mod:`ast` (no module of the package is imported for it): every ``import`` statement
of every module of ``medsyn_monai``, at any depth (function-level imports count), relative imports resolved;
``from a import b`` points at the module ``a.b`` when there is one, else at ``a``. Imports in an ``if TYPE_CHECKING:``
block are kept apart: they never run.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ignite.engine import Engine

PACKAGE = "medsyn_monai"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

#: sub-package -> the other sub-packages its modules may import at run time (a sub-package may import itself).
#: ``utils`` < ``data``, ``transforms``, ``metrics``, ``visualize`` < ``networks`` < ``losses``, ``inferers``
#: < ``engines``, ``handlers`` < ``apps``.
BASE = {"utils", "data", "transforms", "metrics", "visualize"}
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "data": {"utils"},
    "transforms": {"utils"},
    "metrics": {"utils"},
    "visualize": {"utils"},
    "networks": BASE,
    "losses": BASE | {"networks"},
    "inferers": BASE | {"networks"},
    # engines and handlers are peers, neither imports the other: an engine receives its handlers as arguments
    # (``train_handlers`` / ``val_handlers``, as MONAI's workflows do) and a handler attaches to any Ignite engine
    # through events and ``engine.state``, so a handler serves MONAI's SupervisedTrainer as well as DiffusionTrainer,
    # and an engine runs with any handler list. (The code holds to this: no module of one imports the other.)
    "engines": BASE | {"networks", "losses", "inferers"},
    "handlers": BASE | {"networks", "losses", "inferers"},
    # whole applications may use every building block; nothing below imports apps (only the package's __init__)
    "apps": BASE | {"networks", "losses", "inferers", "engines", "handlers"},
}
#: imports allowed only inside ``if TYPE_CHECKING:`` (annotations only): data's SliceDataset names the slicer type
#: of transforms, which sits at data's own level.
TYPE_CHECKING_ONLY: dict[str, set[str]] = {"data": {"transforms"}}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "medsyn_monai.data.loader"
    target: str  # the imported module (absolute; an external name as written, e.g. "monai.bundle.ConfigParser")
    line: int
    type_checking: bool  # inside an ``if TYPE_CHECKING:`` block

    def __str__(self) -> str:
        where = " (under TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.module} (line {self.line}) imports {self.target}{where}"


def _module_names() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is named by its ``__init__.py``)."""
    names = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _module_names()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        is_package = MODULES[module].name == "__init__.py"
        self.package = module if is_package else module.rpartition(".")[0]  # what a level-1 relative import means
        self.type_checking = False
        self.imports: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        self.imports.append(Import(self.module, target, node.lineno, self.type_checking))

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        outer, self.type_checking = self.type_checking, True
        for child in node.body:
            self.visit(child)
        self.type_checking = outer
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            name = f"{base}.{alias.name}"
            internal = base == PACKAGE or base.startswith(PACKAGE + ".")
            self._add(base if internal and name not in MODULES else name, node)


def _imports() -> Iterator[Import]:
    for module, path in MODULES.items():
        collector = _ImportCollector(module)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        yield from collector.imports


IMPORTS = list(_imports())


def _subpackage(name: str) -> str | None:
    """``medsyn_monai.<sub>.…`` -> ``<sub>``; the package itself -> ``""``; outside the package -> ``None``."""
    if name == PACKAGE:
        return ""
    return name.split(".")[1] if name.startswith(PACKAGE + ".") else None


def _strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): the components of ``graph`` in reverse topological order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_the_graph_sees_the_whole_package():
    """Guards the checks below against reading nothing: every sub-package has modules and known imports are found."""
    assert set(ALLOWED) == {_subpackage(m) for m in MODULES} - {""}
    found = {(i.module, i.target, i.type_checking) for i in IMPORTS}
    assert ("medsyn_monai.engines", "medsyn_monai.engines.trainer", False) in found  # relative: from .trainer import
    assert ("medsyn_monai", "medsyn_monai.apps", False) in found  # from . import apps, ...
    assert any(m == "medsyn_monai.data.slice_dataset" and t.startswith("medsyn_monai.transforms") and tc
               for m, t, tc in found)  # fmt: skip


def test_no_module_imports_monai_bundle():
    """The package is used *by* bundles (``$import medsyn_monai`` in their configs) and never drives monai.bundle."""
    bad = [str(i) for i in IMPORTS if i.target == "monai.bundle" or i.target.startswith("monai.bundle.")]
    assert not bad, "\n".join(bad)


def test_subpackage_layering():
    """Each sub-package imports only the sub-packages below it (:data:`ALLOWED`); ``data`` may name ``transforms``
    under ``TYPE_CHECKING`` only; only ``apps`` itself and the package's ``__init__`` import ``apps``."""
    bad = []
    for imp in IMPORTS:
        source, target = _subpackage(imp.module), _subpackage(imp.target)
        if target is None or source == "" or source == target:  # external, the package's __init__, or itself
            continue
        allowed = ALLOWED[source] | (TYPE_CHECKING_ONLY.get(source, set()) if imp.type_checking else set())
        if target not in allowed:  # "" (the package itself, which imports apps) is never allowed
            bad.append(f"{imp}: {source} may import only {sorted(allowed)}")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    """No strongly connected component of more than one module (nor a module importing itself) in the graph of the
    imports that run (``TYPE_CHECKING`` blocks left out; a parent package's ``__init__`` is not an implicit edge)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if not imp.type_checking and imp.target in MODULES:
            graph[imp.module].add(imp.target)
    cycles = [c for c in _strongly_connected_components(graph) if len(c) > 1 or c[0] in graph[c[0]]]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _is_batch_preparation(cls: type) -> bool:
    """A class whose own ``__call__`` takes a batch the way MONAI's workflows call ``prepare_batch``:
    ``prepare_batch(batchdata, device, non_blocking)``, the first parameter being the batch."""
    if not any("__call__" in vars(k) for k in cls.__mro__[:-1]):
        return False
    signature = inspect.signature(cls.__call__)
    params = list(signature.parameters)
    try:
        signature.bind(object(), {"image": None}, "cpu", False)
    except TypeError:
        return False
    return len(params) > 1 and "batch" in params[1]


def test_engines_hold_only_ignite_engines_and_batch_preparation():
    """Every class in ``medsyn_monai.engines.__all__`` is an :class:`ignite.engine.Engine` or a batch preparation
    (:func:`_is_batch_preparation`); its other exports are constants, never functions (those live elsewhere)."""
    import medsyn_monai.engines as engines  # the one check that imports the package: it inspects the classes

    bad = []
    for name in engines.__all__:
        obj = getattr(engines, name)
        if inspect.isclass(obj):
            if not (issubclass(obj, Engine) or _is_batch_preparation(obj)):
                bad.append(f"{name}: neither an ignite.engine.Engine nor a batch preparation")
        elif callable(obj):
            bad.append(f"{name}: a callable that is not a class")
    assert not bad, "\n".join(bad)
    assert any(inspect.isclass(getattr(engines, n)) for n in engines.__all__)
