"""Find the project's Job classes: import every ``*.py`` under ``jobs.dir`` as a package."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from lark_core.errors import DiscoveryError
from lark_core.job import Job
from lark_core.settings import Config

PACKAGE = "lark_jobs"


@dataclass
class JobRegistry:
    """Registered job classes by name, and the file each came from."""

    jobs: dict[str, type[Job]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def get(self, name: str) -> type[Job] | None:
        return self.jobs.get(name)

    def __len__(self) -> int:
        return len(self.jobs)


def _package(name: str, folder: Path) -> ModuleType:
    """A package module for ``folder`` (its ``__init__.py`` runs if it has one)."""
    if name in sys.modules and getattr(sys.modules[name], "__path__", None) == [str(folder)]:
        return sys.modules[name]
    init = folder / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(folder)])
    else:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
    if spec is None:  # pragma: no cover - a file spec with a real __init__.py
        raise DiscoveryError(f"{init}: cannot import")
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(folder)]
    sys.modules[name] = module
    if init.exists() and spec.loader is not None:
        _exec(spec.loader.exec_module, module, init)
    return module


def _exec(fn: object, arg: object, path: Path) -> None:
    try:
        fn(arg)  # type: ignore[operator]
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise DiscoveryError(f"{path}: failed to import: {last}") from exc


def _forget_other_root(root: Path) -> None:
    """Drop a jobs package imported from another folder (tests load several projects)."""
    current = sys.modules.get(PACKAGE)
    if current is not None and getattr(current, "__path__", None) != [str(root)]:
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module_files(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part.startswith(("_", ".")) for part in rel.parts):
            continue
        out.append(path)
    return out


def _import(root: Path, path: Path) -> ModuleType:
    rel = path.relative_to(root).with_suffix("")
    parent = PACKAGE
    folder = root
    for part in rel.parts[:-1]:
        folder = folder / part
        parent = f"{parent}.{part}"
        _package(parent, folder)
    name = f"{parent}.{rel.parts[-1]}"
    if not all(p.isidentifier() for p in rel.parts):
        raise DiscoveryError(f"{path}: file and folder names must be valid Python identifiers")
    if name in sys.modules:
        return sys.modules[name]
    module: ModuleType | None = None

    def load(_: object) -> None:
        nonlocal module
        module = importlib.import_module(name)

    _exec(load, None, path)
    assert module is not None
    return module


def _classes(module: ModuleType) -> list[type[Job]]:
    return [obj for obj in vars(module).values()
            if inspect.isclass(obj) and issubclass(obj, Job) and obj is not Job
            and obj.__module__ == module.__name__ and not obj.__dict__.get("abstract", False)]


def discover(config: Config) -> JobRegistry:
    """Import the jobs folder and register its Job classes; raise DiscoveryError on conflicts."""
    root = config.jobs.dir
    if root is None or not root.is_dir():
        raise DiscoveryError(f"jobs.dir: folder {root} does not exist (set jobs.dir in the config)")
    root = root.resolve()
    _forget_other_root(root)
    _package(PACKAGE, root)
    registry = JobRegistry()
    for path in _module_files(root):
        for cls in _classes(_import(root, path)):
            _register(registry, cls, path, config)
    return registry


def _register(registry: JobRegistry, cls: type[Job], path: Path, config: Config) -> None:
    name = cls.job_name()
    if name in registry.jobs:
        raise DiscoveryError(
            f"{path}: job name {name!r} is also defined in {registry.files[name]} "
            "(give one of them a different class name or `name`)")
    if cls.handle is Job.handle:
        raise DiscoveryError(f"{path}: job {name!r} has no handle() method "
                             "(set `abstract = True` on a base class)")
    if cls.queue not in config.jobs.queues:
        raise DiscoveryError(
            f"{path}: job {name!r} uses queue {cls.queue!r}, which is not in jobs.queues "
            f"({', '.join(config.jobs.queues)})")
    registry.jobs[name] = cls
    registry.files[name] = path
