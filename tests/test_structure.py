"""The code's structure, checked from its source in a fraction of a second: imports run one way (no
circle among the project's modules, and generation/'s packages in layers, each importing only those
below it), no project import is hidden inside a function, only the worker's runtime package imports
torch and diffusers, and no kind is special-cased outside its own module."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "billing", "config", "generation")
HEAVY = ("torch", "diffusers", "transformers", "numpy", "peft")
RUNTIME = "generation.runtime"


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return modules


MODULES = _modules()


def _imported(node: ast.AST, module: str) -> list[str]:
    """Full names of what an import statement brings in (`from a import b` is a.b when b is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parent = module.split(".")[: -node.level]
            base = ".".join(parent + ([base] if base else []))
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
    return []


def _project(name: str) -> str | None:
    """The project module `name` is, or lies in (None for a library)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str):
    """(name, inside a function, the function's name) for every import in `module`."""
    tree = ast.parse(MODULES[module].read_text())
    found = []

    def visit(node, function=None):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            for name in _imported(child, module):
                found.append((name, function is not None, function))
            visit(child, inner)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module in MODULES:
        targets = {_project(name) for name, inside, _ in _imports(module) if not inside}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_walk_sees_the_project():
    graph = _graph()
    assert "generation.lifecycle.jobs" in graph["generation.services"]
    assert "generation.answers.hosted" in graph["generation.lifecycle.webhooks"]
    assert len(MODULES) > 40


def test_no_circle_of_imports():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_project_import_inside_a_function():
    """Except AppConfig.ready, where Django apps connect their signal receivers."""
    hidden = [
        (module, name, function)
        for module in MODULES
        for name, inside, function in _imports(module)
        if inside and _project(name) and function != "ready"
    ]
    assert hidden == []


def test_the_state_machine_does_not_call_the_api_or_the_worker():
    graph = _graph()
    for module in (
        "generation.lifecycle.jobs",
        "generation.queueing.queue",
        "generation.queueing.estimates",
        "generation.lifecycle.recovery",
        "generation.services",
        "generation.answers.selectors",
    ):
        assert not {
            t for t in graph[module] if t.startswith(("generation.api", RUNTIME, "generation.lifecycle.webhooks"))
        }, module


def test_only_the_runtime_imports_torch_and_diffusers():
    heavy = [
        (module, name)
        for module in MODULES
        if not module.startswith(RUNTIME)
        for name, _, _ in _imports(module)
        if name.split(".")[0] in HEAVY
    ]
    assert heavy == []


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


# The worker's side of Django: the RQ tasks and the bridge that resolves a job's inputs for its predictor.
BRIDGE = {f"{RUNTIME}.tasks", f"{RUNTIME}.bridge"}
LOOKUPS = {"generation.models", "generation.inputs.storage", "generation.inputs.library"}


def test_only_the_bridge_looks_things_up_on_the_worker():
    """Predictors only predict: no runtime module but the bridge imports the database models, storage or
    the library, and what the predictors import does not reach them by any chain."""
    graph = _graph()
    runtime = [module for module in MODULES if module.startswith(RUNTIME + ".")]
    assert BRIDGE <= set(runtime)
    direct = {module: graph[module] & LOOKUPS for module in runtime if module not in BRIDGE}
    assert {module: found for module, found in direct.items() if found} == {}
    predictors = _reachable(graph, f"{RUNTIME}.registry")
    assert {f"{RUNTIME}.sdxl", f"{RUNTIME}.upscale"} <= predictors
    assert not predictors & (LOOKUPS | BRIDGE)


def test_the_worker_never_reaches_the_api_package():
    graph = _graph()
    for module in MODULES:
        if module.startswith(RUNTIME):
            reached = {found for found in _reachable(graph, module) if found.startswith("generation.api")}
            assert reached == set(), module


def test_the_web_side_names_worker_code_only_by_string():
    """What the web process loads (its URLs, settings and apps) never imports the worker's runtime."""
    graph = _graph()
    web = set().union(
        *(
            _reachable(graph, start)
            for start in (
                "config.urls",
                "config.wsgi",
                "config.settings",
                "generation.apps",
                "generation.lifecycle.webhooks",
            )
        )
    )
    assert "generation.api.views" in web and "generation.lifecycle.jobs" in web
    assert not {module for module in web if module.startswith(RUNTIME)}


# generation/'s layers, lowest first: a module imports only from its own layer or those below (the
# longest prefix names a module's layer). kinds/ knows no database, the state machine no API, the APIs
# and the worker's runtime nothing of each other.
LAYERS = [
    ("generation.infra", "generation.answers.envelope", "generation.signals"),
    ("generation.kinds",),
    ("generation.models",),
    ("generation.queueing", "generation.inputs"),
    ("generation.answers",),
    ("generation.lifecycle",),
    ("generation.services",),
    ("generation.web", "generation.runtime"),
    ("generation.api", "generation.frontends", "generation.dashboard", "generation.management", "generation.admin"),
    ("generation.urls", "generation.apps"),
]


def _layer(module: str) -> int | None:
    """The layer of a generation module (None outside generation/)."""
    found = [
        (len(prefix), number)
        for number, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(found)[1] if found else None


def test_every_module_of_generation_has_a_layer():
    unplaced = [m for m in MODULES if m.startswith("generation.") and m != "generation" and _layer(m) is None]
    assert unplaced == []


def test_generation_imports_run_down_its_layers():
    graph = _graph()
    upward = [
        (module, target)
        for module, targets in graph.items()
        if _layer(module) is not None
        for target in targets
        if _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert upward == []


def test_the_worker_and_the_apis_do_not_import_each_other():
    graph = _graph()
    apis = ("generation.api", "generation.frontends", "generation.dashboard", "generation.web")
    crossing = [
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if (module.startswith(RUNTIME) and target.startswith(apis))
        or (module.startswith(apis) and target.startswith(RUNTIME))
    ]
    assert crossing == []


KIND_PARAMS = re.compile(r"isinstance\([^)]*,\s*\(?\s*\w*Params\b")


def test_no_kind_is_special_cased_outside_its_module():
    """Behaviour that differs by kind is a method of the kind: no `isinstance(..., <a kind's Params>)`
    outside generation/kinds/, and no operation's name written anywhere but in generation/kinds/ (where
    its kind's module owns it; ControlNet's `inpaint` control type is another word spelt alike, as are
    A1111's own txt2img and img2img endpoints)."""
    from generation import kinds

    ladders = [
        str(path.relative_to(ROOT))
        for module, path in MODULES.items()
        if not module.startswith("generation.kinds") and KIND_PARAMS.search(path.read_text())
    ]
    assert ladders == []
    for name in kinds.OPERATIONS:
        writers = [
            module
            for module, path in MODULES.items()
            if re.search(rf"[\"']{re.escape(name)}[\"']", path.read_text())
            and module.startswith("generation.")
            and not module.startswith("generation.kinds")
            and module != A1111
        ]
        assert writers == [], name


A1111 = "generation.frontends.a1111"
