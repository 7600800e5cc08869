"""The package's shape, read from its source: the import graph has no cycle, the contract
module is a leaf, every public function enters through new_call, every backend implements
the whole contract, no module is oversized."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nbloss"
BACKENDS = {"_host": "HostCall", "_device": "DeviceCall", "_dask": "DaskCall"}
PUBLIC = {"nbloss", "nbloss._losses", "nbloss._autograd", "nbloss._criteria", "nbloss.fvcore"}


def modules():
    """{dotted name: parsed module} of every module in the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return found


def imports(name, tree, known):
    """The package modules that module ``name`` imports, anywhere in its code (lazy
    imports inside functions included, ``importlib.import_module("nbloss.x")`` too)."""
    package = name if name in ("nbloss", "nbloss.bench") else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            # ``from . import x`` imports x; ``from .m import x`` imports m (and x, a module)
            targets = names if node.module is None and node.level else [base] + names
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.JoinedStr):  # importlib.import_module(f"nbloss.{name}")
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if text == "nbloss.":  # _losses._backend(name): the backends, by name
                targets = [f"nbloss.{backend}" for backend in BACKENDS]
        out.update(t for t in targets if t in known and t != name)
    return out


def graph():
    known = modules()
    return {name: imports(name, tree, known) for name, tree in known.items()}


def test_import_graph_has_no_cycle():
    edges = graph()
    # the public layer picks backends by name (importlib): it may import all of them
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", " -> ".join(path + [node])
        state[node] = "open"
        for nxt in sorted(edges[node]):
            visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(edges):
        visit(node, [])


def test_contract_is_a_leaf_and_backends_do_not_import_the_public_layer():
    edges = graph()
    assert edges["nbloss._call"] <= {"nbloss._math", "nbloss._validate"}
    for backend in BACKENDS:
        assert not edges[f"nbloss.{backend}"] & PUBLIC, backend
    # the static types and the shared docstring text import nothing of nbloss
    assert edges["nbloss._typing"] == set() and edges["nbloss._docs"] == set()


def test_every_public_function_returns_one_operation_of_new_call():
    """``return new_call(...).<operation>(...)``: one entry, one operation, nothing else."""
    trees = modules()
    found = set()
    for module in ("nbloss._losses", "nbloss._autograd"):
        for node in trees[module].body:
            if (not isinstance(node, ast.FunctionDef) or node.name.startswith("_")
                    or node.name == "new_call"):
                continue
            found.add(node.name)
            body = [n for n in node.body if not (isinstance(n, ast.Expr)  # the docstring
                                                 and isinstance(n.value, ast.Constant))]
            assert len(body) == 1 and isinstance(body[0], ast.Return), node.name
            call = body[0].value
            assert (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Call)
                    and ast.unparse(call.func.value.func) == "new_call"), node.name
    assert found == {f"{loss}_loss{suffix}" for loss in ("smooth_l1", "huber")
                     for suffix in ("", "_grad", "_value_and_grad", "_backward", "_hess_diag")}


def _methods(tree, cls):
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return node, {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}


def test_every_backend_implements_the_whole_contract():
    trees = modules()
    _, contract = _methods(trees["nbloss._call"], "Call")
    required = {name for name, fn in contract.items()
                if any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
                       for n in ast.walk(fn))}
    assert {"set_upstream", "loss", "grad_full", "hess_full", "value_and_grad_full",
            "loss_sum", "sum_to", "times_upstream"} <= required
    for module, cls in BACKENDS.items():
        node, methods = _methods(trees[f"nbloss.{module}"], cls)
        assert [ast.unparse(b) for b in node.bases] == ["_call.Call"], cls
        missing = required - set(methods)
        assert not missing, f"{cls} lacks {sorted(missing)}"
        for name in required:  # the same parameters as the contract declares
            want = [a.arg for a in contract[name].args.args]
            assert [a.arg for a in methods[name].args.args] == want, f"{cls}.{name}"


def test_no_module_is_oversized():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 450, path.name
