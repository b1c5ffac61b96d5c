"""What an answer's code can reach: the top-level statements that names lead to.

A cell's scaffolding (``expected = sorted(data)`` next to the learner's sort function, for
the learner's own comparison) is not the answer; what the function or class the tests
call can reach is: its own definition, and the top-level definitions, assignments and
imports of every name it references, transitively. The names the tests call are those
their cells read before binding them (``roots``).

Names are resolved as Python does: a function's, lambda's, class body's or
comprehension's own names (parameters, assignments, loop variables...) are its own, never
the module's.
"""
import ast
import functools

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
IMPORTED, ALIAS, OWN = "imported", "alias", "own"  # how a scope binds a name


@functools.lru_cache(maxsize=256)  # each problem reads the cells before it again
def parse(source):
    """The module of a cell's source (IPython syntax allowed), or None if it does not parse.
    The tree is shared between callers: read it, never change it."""
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return ast.parse(source)  # plain Python: IPython's transformer leaves it as it is
    except SyntaxError:
        pass
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


def _run_here(nodes):
    """The nodes of ``nodes`` that run in their scope: nested scopes themselves, but of
    their insides only what runs where they are defined (decorators, defaults, base
    classes, a comprehension's first iterable)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, FUNCTIONS):
            args = node.args
            todo += args.defaults + [d for d in args.kw_defaults if d]
            todo += getattr(node, "decorator_list", [])
        elif isinstance(node, ast.ClassDef):
            todo += node.decorator_list + node.bases + [k.value for k in node.keywords]
        elif isinstance(node, COMPREHENSIONS):
            todo.append(node.generators[0].iter)
        else:
            todo += ast.iter_child_nodes(node)


def _dotted(node):
    """Whether ``node`` is a name or a chain of attributes of one (``torch.nn.functional``)."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def scope_bindings(nodes):
    """{name: {how}} of the names the code ``nodes`` binds in its own scope: IMPORTED by an
    import, ALIAS by assigning a dotted name (``F = torch.nn.functional``), OWN otherwise
    (an object of its own: a result, a parameter, a loop variable, a function)."""
    bound, declared = {}, set()
    for node in _run_here(nodes):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)  # bound in another scope
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.setdefault((alias.asname or alias.name).split(".")[0], set()).add(IMPORTED)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.setdefault(node.id, set()).add(OWN)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.setdefault(node.name, set()).add(OWN)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.setdefault(node.name, set()).add(OWN)
        elif isinstance(node, ast.Assign) and _dotted(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound.setdefault(target.id, set()).add(ALIAS)
    return {name: how for name, how in bound.items() if name not in declared}


class ClassScope(dict):
    """A class body's bindings: its methods do not see them."""


def _parameters(args):
    names = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
    return {a.arg: {OWN} for a in names if a}


def scoped_nodes(node, scopes=()):
    """(node, scopes) for ``node`` and every node inside it, ``scopes`` being the
    bindings (scope_bindings) of the function, class and comprehension scopes whose names
    it sees, innermost first (a class body's names are not seen from its methods)."""
    yield node, scopes
    if isinstance(node, FUNCTIONS):
        args = node.args
        outside = list(args.defaults) + [d for d in args.kw_defaults if d]
        outside += getattr(node, "decorator_list", [])
        body = node.body if isinstance(node.body, list) else [node.body]
        inner = ({**_parameters(args), **scope_bindings(body)},) + tuple(
            s for s in scopes if not isinstance(s, ClassScope))
        yield from _each(outside, scopes)
        yield from _each(body, inner)
    elif isinstance(node, ast.ClassDef):
        yield from _each(node.decorator_list + node.bases + node.keywords, scopes)
        yield from _each(node.body, (ClassScope(scope_bindings(node.body)),) + scopes)
    elif isinstance(node, COMPREHENSIONS):
        first, *rest = node.generators
        inner = (scope_bindings([g.target for g in node.generators]),) + scopes
        yield from scoped_nodes(first.iter, scopes)
        parts = [first.target] + first.ifs + [p for g in rest for p in (g.target, g.iter, *g.ifs)]
        parts += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        yield from _each(parts, inner)
    else:
        yield from _each(ast.iter_child_nodes(node), scopes)


def _each(nodes, scopes):
    for node in nodes:
        yield from scoped_nodes(node, scopes)


def binding(name, scopes, module=None):
    """How ``name`` is bound where it is read (scope_bindings): by the innermost of
    ``scopes`` that binds it, else by the module's bindings ``module``; None if by neither
    (a builtin, or a name of other code)."""
    return next((scope[name] for scope in scopes if name in scope), (module or {}).get(name))


# Nodes come from parse()'s shared trees: each problem of a submission, and each submission
# (the instructor's cells), analyses the same ones again.
@functools.lru_cache(maxsize=2**14)
def free_names(node):
    """Names ``node`` reads that its own functions, classes and comprehensions do not bind:
    the module's, or builtins."""
    return frozenset(n.id for n, scopes in scoped_nodes(node) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Load) and binding(n.id, scopes) is None)


@functools.lru_cache(maxsize=2**14)
def bound_names(statement):
    """Names a top-level statement binds in the module."""
    return frozenset(scope_bindings([statement]))


def reachable(sources, roots):
    """The top-level statements of ``sources`` (cell sources, in order) that the names
    ``roots`` lead to: those binding a root, then those binding a name they read, and so
    on. Returns (those statements, {name: {how}} of every name the sources bind at the
    top level, as scope_bindings)."""
    statements = [s for tree in map(parse, sources) if tree for s in tree.body]
    binders, defined = {}, scope_bindings(statements)
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
    return reached, defined


@functools.lru_cache(maxsize=256)  # a problem's instructor cells: every submission's
def names_read_unbound(sources):
    """The names code run in order (a tuple of cell sources) reads before binding them
    itself: what it takes from elsewhere (another cell, builtins). A name counts as bound
    once bound for certain: by an earlier statement, a loop's target within its loop, a
    ``with`` target; what a loop body or one branch binds is not bound after it, as it may
    not run."""
    read, bound = set(), set()
    for tree in map(parse, sources):
        for statement in tree.body if tree else []:
            read |= _reads(statement, bound)
    return frozenset(read)


def _reads(statement, bound):
    """Names ``statement`` reads that are not in ``bound`` when it reads them; adds to
    ``bound`` what it binds for certain."""
    before = set(bound)
    return _reads_in(statement, bound) - before


def _block(statements, bound):
    found = set()
    for statement in statements:
        found |= _reads(statement, bound)
    return found


def _reads_in(statement, bound):
    if isinstance(statement, (ast.For, ast.AsyncFor)):
        found = free_names(statement.iter) | _target_reads(statement.target)
        inside = bound | set(scope_bindings([statement.target]))
        return found | _block(statement.body, inside) | _block(statement.orelse, set(bound))
    if isinstance(statement, (ast.While, ast.If)):
        found = free_names(statement.test)
        return found | _block(statement.body, set(bound)) | _block(statement.orelse, set(bound))
    if isinstance(statement, (ast.With, ast.AsyncWith)):
        found = set()
        for item in statement.items:
            found |= free_names(item.context_expr) - bound
            if item.optional_vars is not None:
                found |= _target_reads(item.optional_vars) - bound
                bound |= set(scope_bindings([item.optional_vars]))
        return found | _block(statement.body, bound)
    if isinstance(statement, (ast.Try, ast.TryStar)):
        found = _block(statement.body, set(bound)) | _block(statement.orelse, set(bound))
        for handler in statement.handlers:
            found |= free_names(handler.type) if handler.type else set()
            found |= _block(handler.body, bound | ({handler.name} if handler.name else set()))
        return found | _block(statement.finalbody, bound)
    if isinstance(statement, ast.AugAssign):
        found = free_names(statement)  # its target is read first
    elif isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        found = free_names(statement.value) if statement.value else set()
        found |= set().union(*(_target_reads(t) for t in targets))
    else:  # definitions, imports, expressions: read, then bind
        found = free_names(statement)
    bound |= bound_names(statement)
    return found


def _target_reads(target):
    """Names an assignment target reads (``a[i] = ...`` reads ``a`` and ``i``)."""
    if isinstance(target, ast.Name):
        return set()
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_reads(t) for t in target.elts))
    if isinstance(target, ast.Starred):
        return _target_reads(target.value)
    return free_names(target)
