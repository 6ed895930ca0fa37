#!/usr/bin/env python3
"""The layer check: `scripts/layers.py [SRC_DIR ...]` (default: src and
bench-harness/src).

For each crate source folder it resolves every `crate::`, `super::` and
`self::` path in the code (comments and string literals ignored, `use`
groups expanded, test modules included) to the module it names, and reports:

- cycles between the top-level modules of the crate (`src/<m>/` or
  `src/<m>.rs`): layers import one way;
- cycles between the entries of one folder (its files and subfolders, the
  folder's own `mod.rs` or `<folder>.rs` excepted: a parent declares its
  children and may re-export them): no two files of a folder import each
  other, directly or around a ring;
- files over MAX_LINES lines.

Exit 0 when none of these is found, 1 otherwise. `--verbose` prints every
edge between top-level modules."""
import os
import re
import sys

MAX_LINES = 900


def strip(code):
    """The code without comments, string and char literals."""
    out, i, n = [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if code.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif code.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', code[i:i + 10]) and not (i and (code[i - 1].isalnum() or code[i - 1] == "_")):
            m = re.match(r'r(#*)"', code[i:])
            end = '"' + m.group(1)
            j = code.find(end, i + len(m.group(0)))
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and code[j] != '"':
                j += 2 if code[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", code[i:i + 4]) or (c == "'" and re.match(r"'\\[xu]", code[i:i + 3])):
            j = code.find("'", i + 2)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_path(rel):
    """`runtime/session/mod.rs` -> ['runtime', 'session']; `lib.rs` -> []."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def expand_use(tree):
    """Paths of a use tree: `a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        # split s at top-level commas
        depth, start, items = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(s[start:k])
                start = k + 1
        items.append(s[start:])
        for it in items:
            if not it:
                continue
            b = it.find("{")
            if b >= 0 and it.endswith("}"):
                head = it[:b].rstrip(":")
                walk(prefix + ([head] if head else []), it[b + 1:-1])
            else:
                it = re.sub(r"\bas\w+$", "", it)
                out.append(prefix + [it])

    walk([], tree)
    return ["::".join(p).replace(":::", "::") for p in out]


PATH = re.compile(r"\b(?:crate|super|self)(?:::\w+)+")


def paths_in(code):
    """Every module path the code names, as written."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]*);", code):
        found.extend(expand_use(m.group(1)))
    body = re.sub(r"\buse\s+[^;]*;", "", code)
    found.extend(m.group(0) for m in PATH.finditer(body))
    # `crate::{a, b}` outside use statements (rare) and `pub(in crate::x)`
    return [p for p in found if re.match(r"(crate|super|self)\b", p)]


def resolve(path, here, is_mod_file):
    """The absolute module path a written path names, from the module
    `here` (the file's module; `super` of a non-mod file is its folder)."""
    parts = path.split("::")
    if parts[0] == "crate":
        cur, rest = [], parts[1:]
    else:
        cur = list(here)
        rest = parts
        while rest and rest[0] in ("self", "super"):
            if rest[0] == "super":
                cur = cur[:-1]
            rest = rest[1:]
    return cur + [p for p in rest if p and p != "*"]


def scan(src):
    files = {}
    for root, _, names in os.walk(src):
        for f in names:
            if f.endswith(".rs"):
                p = os.path.join(root, f)
                files[os.path.relpath(p, src)] = p
    refs = {}
    lines = {}
    for rel, p in files.items():
        text = open(p, encoding="utf-8", errors="replace").read()
        lines[rel] = text.count("\n") + (0 if text.endswith("\n") else 1)
    # the binaries are crates of their own: their lines count, their paths
    # are not this crate's
    files = {r: p for r, p in files.items() if not r.startswith("bin" + os.sep)}
    for rel, p in files.items():
        text = open(p, encoding="utf-8", errors="replace").read()
        here = module_path(rel)
        is_mod = os.path.basename(rel) in ("mod.rs", "lib.rs", "main.rs")
        refs[rel] = [resolve(x, here, is_mod) for x in paths_in(strip(text))]
    return files, refs, lines


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def sc(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                sc(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            sc(v)
    return out


def check(src, verbose):
    files, refs, lines = scan(src)
    problems = []
    modules = {}  # module path (tuple) -> rel file
    for rel in files:
        modules[tuple(module_path(rel))] = rel

    def entry_of(target, folder):
        """The child of `folder` that the absolute path `target` lies in."""
        n = len(folder)
        if len(target) > n and tuple(target[:n]) == folder:
            child = tuple(target[: n + 1])
            if child in modules:
                return target[n]
        return None

    # Folders: every module that has children.
    folders = {m[:-1] for m in modules if m}
    for folder in sorted(folders):
        graph = {}
        edges = {}
        for rel in files:
            mod = tuple(module_path(rel))
            if len(mod) <= len(folder) or tuple(mod[: len(folder)]) != folder:
                continue  # the folder's own module file, or elsewhere
            me = mod[len(folder)]
            graph.setdefault(me, set())
            for target in refs[rel]:
                other = entry_of(target, folder)
                if other and other != me:
                    graph[me].add(other)
                    edges.setdefault((me, other), set()).add(rel)
        where = "/".join(folder) or "(crate root)"
        if verbose and not folder:
            print(f"{src}: edges between top-level modules (A -> B: A uses B):")
            for (a, b), fs in sorted(edges.items()):
                print(f"  {a} -> {b}   ({', '.join(sorted(fs))})")
        for comp in cycles(graph):
            detail = "; ".join(
                f"{a} -> {b} ({', '.join(sorted(edges[(a, b)]))})"
                for a in comp
                for b in comp
                if (a, b) in edges
            )
            kind = "modules" if not folder else f"files of {where}/"
            problems.append(f"{src}: cycle between {kind}: {' <-> '.join(comp)}: {detail}")
    for rel, n in sorted(lines.items(), key=lambda kv: -kv[1]):
        if n > MAX_LINES:
            problems.append(f"{src}/{rel}: {n} lines, over the limit of {MAX_LINES}")
    largest = max(lines.items(), key=lambda kv: kv[1])
    return problems, len(folders), largest


def self_test():
    """The check finds what it is for, in a tree made to have each fault."""
    import tempfile

    cases = {
        "file cycle": {
            "lib.rs": "mod a;",
            "a/mod.rs": "mod x; mod y;",
            "a/x.rs": "use super::y::Y; pub struct X;",
            "a/y.rs": "use super::x::X; pub struct Y;",
        },
        "module cycle": {
            "lib.rs": "mod a; mod b;",
            "a/mod.rs": "use crate::b::B; pub struct A;",
            "b/mod.rs": "use crate::a::A; pub struct B;",
        },
        "over the limit": {
            "lib.rs": "mod a;",
            "a.rs": "// line\n" * (MAX_LINES + 1),
        },
    }
    clean = {
        "lib.rs": "mod a; mod b;",
        "a/mod.rs": "mod x; mod y;",
        "a/x.rs": "use super::y::Y; use crate::b::B; pub struct X;",
        "a/y.rs": "pub struct Y; // use super::x::X; in a comment",
        "b/mod.rs": "pub struct B;",
    }
    for name, files in list(cases.items()) + [("clean", clean)]:
        with tempfile.TemporaryDirectory() as tmp:
            for rel, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                with open(os.path.join(tmp, rel), "w") as f:
                    f.write(text)
            problems, _, _ = check(tmp, False)
            if (name == "clean") == bool(problems):
                sys.exit(f"layers: self-test {name}: {problems or 'nothing found'}")
    print(f"layers: self-test: each of {len(cases)} faults found, a clean tree passes")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    verbose = "--verbose" in sys.argv
    if "--self-test" in sys.argv:
        self_test()
        return
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    srcs = args or [os.path.join(root, "src"), os.path.join(root, "bench-harness", "src")]
    bad = []
    for src in srcs:
        src = os.path.relpath(src)
        problems, nfolders, (big, n) = check(src, verbose)
        bad.extend(problems)
        print(f"layers: {src}: {nfolders} folders checked; largest file {big} {n} lines")
    for p in bad:
        print(f"layers: {p}")
    if bad:
        sys.exit(1)
    print("layers: no cycle between modules or between the files of a folder; no file over "
          f"{MAX_LINES} lines")


if __name__ == "__main__":
    main()
