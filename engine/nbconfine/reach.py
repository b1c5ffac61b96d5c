"""What an answer's code can reach: the top-level statements that names lead to.

A cell's scaffolding (``expected = sorted(data)`` next to the learner's sort function, for
the learner's own comparison) is not the answer; what the function or class the tests
call can reach is: its own definition, and the top-level definitions, assignments and
imports of every name it references, transitively.
"""
import ast
import functools

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@functools.lru_cache(maxsize=256)  # each problem reads the cells before it again
def parse(source):
    """The module of a cell's source (IPython syntax allowed), or None if it does not parse.
    The tree is shared between callers: read it, never change it."""
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


def bound_names(statement):
    """Names a top-level statement binds in the module."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in statement.names}
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, SCOPES + (ast.ClassDef,)) and node is not statement:
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def free_names(node):
    """Names ``node`` reads that its own functions do not bind: the module's, or builtins."""
    free = set()

    def visit(n, local):
        if isinstance(n, SCOPES):
            args = n.args
            for default in args.defaults + [d for d in args.kw_defaults if d]:
                visit(default, local)
            for decorator in getattr(n, "decorator_list", []):
                visit(decorator, local)
            body = n.body if isinstance(n.body, list) else [n.body]
            declared = {name for b in body for x in ast.walk(b) if isinstance(x, ast.Global)
                        for name in x.names}
            params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            params |= {a.arg for a in (args.vararg, args.kwarg) if a}
            stored = set()
            for b in body:
                stored |= bound_names(b) if not isinstance(b, SCOPES) else {b.name}
            inner = local | params | (stored - declared)
            for b in body:
                visit(b, inner)
            return
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in local:
            free.add(n.id)
        for child in ast.iter_child_nodes(n):
            visit(child, local)

    visit(node, set())
    return free


def reachable(sources, roots):
    """The top-level statements of ``sources`` (cell sources, in order) that the names
    ``roots`` lead to: those binding a root, then those binding a name they read, and so on."""
    statements = [s for tree in map(parse, sources) if tree for s in tree.body]
    binders = {}
    for statement in statements:
        for name in bound_names(statement):
            binders.setdefault(name, []).append(statement)
    seen, todo, reached = set(), list(roots), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for statement in binders.get(name, []):
            if all(statement is not r for r in reached):
                reached.append(statement)
                todo.extend(free_names(statement))
    return reached, set(binders)


def names_read(source):
    """Every name a piece of code reads (the names a test cell may call)."""
    tree = parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()
