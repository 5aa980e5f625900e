#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a cycle, file to file or folder to folder.

For each crate given (default: photo-server, operator, drill) it reads every `src/**/*.rs`
outside `#[cfg(test)]` modules and test files, resolves each `use crate::a::b::...`,
`use super::...` and `crate::a::b` / `super::x` path in the code, and every relative path that
names a child module (`child::x`, `use child::{..}`), to the module file it names (the longest
prefix that is a module of the crate), and builds two graphs:

- files: module A depends on module B when A's code names an item of B (a module and its own
  submodules are one unit here only through the paths they write: `mod x;` declarations are
  not dependencies);
- folders: the same edges, each end replaced by the top-level module (`src/<name>.rs` or
  `src/<name>/`) it sits in.

A cycle in either graph is printed, shortest first, with the line that makes each edge, and
the script exits 1. A parent module re-exporting or calling its own child (`mod.rs` using
`child::x`) and the child using the parent's items is a cycle too: that is the coupling the
check is for.

Usage: scripts/check-cycles.py [CRATE_DIR...]
"""
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def strip_tests(text):
    """The text without `#[cfg(test)]` items (a module or function by brace matching)."""
    out, i = [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find("{", j)
        semi = text.find(";", j)
        if k < 0 or (0 <= semi < k):
            i = semi + 1 if semi >= 0 else len(text)
            continue
        depth = 0
        for m in range(k, len(text)):
            if text[m] == "{":
                depth += 1
            elif text[m] == "}":
                depth -= 1
                if depth == 0:
                    i = m + 1
                    break
        else:
            i = len(text)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def modules(src):
    """{module path tuple: file} for every module file of a crate."""
    mods = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src)
        parts = list(rel.with_suffix("").parts)
        if parts in (["lib"], ["main"]):
            key = ()
        elif parts[-1] == "mod":
            key = tuple(parts[:-1])
        else:
            key = tuple(parts)
        if parts[0] in ("bin",) or f.name.startswith("build"):
            continue
        mods.setdefault(key, f)
    return mods


def resolve(path, here, mods):
    """The module a `crate::...` / `super::...` / `self::...` path names (longest prefix)."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] in ("super", "self"):
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
        rest = parts
    else:
        return None
    best = base if base in mods else None
    for n in range(1, len(rest) + 1):
        key = base + tuple(rest[:n])
        if key in mods:
            best = key
        else:
            break
    return best


def use_paths(text):
    """Every path a file names: `use` trees expanded, and inline `crate::`/`super::` paths."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        paths.extend(expand(m.group(1).replace("\n", " ").replace(" ", "")))
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def child_paths(text):
    """Paths that may name a child module without `self::` (`child::x`, `use child::{..}`),
    as `self::` paths: in Rust 2018+ a module's own children are in scope by name."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        paths.extend("self::" + p for p in expand(m.group(1).replace("\n", " ").replace(" ", "")))
    for m in re.finditer(r"(?<![\w:])([a-z_]\w*(?:::\w+)+)", text):
        paths.append("self::" + m.group(1))
    return paths


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (`as` renames dropped)."""
    tree = re.sub(r"\bas\w+", "", tree)
    if "{" not in tree:
        return [tree]
    i = tree.index("{")
    prefix = tree[:i]
    inner = tree[i + 1:tree.rindex("}")]
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    out.append(cur)
    result = []
    for part in out:
        part = part.strip()
        if not part:
            continue
        if part == "self":
            result.append(prefix.rstrip(":"))
        else:
            result.extend(expand(prefix + part))
    return result


def cycles(edges):
    """Elementary cycles of a small graph, shortest first (one per set of nodes)."""
    found, seen = [], set()
    nodes = sorted(edges)

    def walk(start, node, path, on_path):
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(list(path))
            elif nxt not in on_path and nxt > start:
                on_path.add(nxt)
                walk(start, nxt, path + [nxt], on_path)
                on_path.discard(nxt)

    for start in nodes:
        walk(start, start, [start], {start})
    return sorted(found, key=len)


def name(mod):
    return "crate" if not mod else "::".join(mod)


def test_only(mods):
    """Modules declared under `#[cfg(test)]` (`#[cfg(test)] mod tests;`), and their children."""
    out = set()
    for mod, f in mods.items():
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", f.read_text()):
            out.add(mod + (m.group(1),))
    return {m for m in mods if any(m[: len(t)] == t for t in out)}


def check(crate):
    src = crate / "src"
    mods = modules(src)
    for mod in test_only(mods):
        del mods[mod]
    file_edges = defaultdict(set)
    why = {}
    for mod, f in mods.items():
        text = strip_comments(strip_tests(f.read_text()))
        for p in use_paths(text) + child_paths(text):
            target = resolve(p, mod, mods)
            if target is None or target == mod:
                continue
            if p.startswith("self::") and len(target) <= len(mod):
                continue  # a relative path counts only when it names a descendant
            # a module naming its own descendant, or its ancestor's items, is not an edge
            # between siblings unless it goes back up and down: keep every edge
            file_edges[mod].add(target)
            why.setdefault((mod, target), p)
    folder_edges = defaultdict(set)
    for a, targets in file_edges.items():
        for b in targets:
            ta, tb = a[:1], b[:1]
            if ta and tb and ta != tb:
                folder_edges[ta].add(tb)
                why.setdefault((ta, tb), why[(a, b)] + f"  ({name(a)} -> {name(b)})")
    problems = []
    for kind, edges in (("file", file_edges), ("folder", folder_edges)):
        # parent <-> child through `mod` re-exports is the same unit: ignore edges from a
        # module to the crate root (lib.rs only declares modules and re-exports)
        graph = {a: {b for b in bs if b != ()} for a, bs in edges.items() if a != ()}
        for cycle in cycles(graph):
            steps = cycle + [cycle[0]]
            lines = [f"    {name(x)} -> {name(y)}: {why.get((x, y), '?')}" for x, y in zip(steps, steps[1:])]
            problems.append(f"  {kind} cycle: " + " -> ".join(name(x) for x in steps) + "\n" + "\n".join(lines))
    return len(mods), problems


def main():
    crates = [Path(a) for a in sys.argv[1:]] or [ROOT / "photo-server", ROOT / "operator", ROOT / "drill"]
    failed = False
    for crate in crates:
        count, problems = check(crate)
        label = crate.name
        if problems:
            failed = True
            print(f"{label}: {len(problems)} import cycle(s) among {count} modules; the shortest:")
            print("\n".join(problems[:12]))
        else:
            print(f"{label}: no import cycle among {count} modules (files and top-level folders)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
