#!/usr/bin/env python3
"""Find import cycles between the files of a Rust crate.

    python3 tools/check-imports.py src        # nib
    python3 tools/check-imports.py simd/src   # nib-simd
    python3 tools/check-imports.py --edges src  # also list every edge found

Reads every `.rs` file reachable from the crate root (`lib.rs`, and `main.rs` as a crate of its
own), builds the graph "file A refers to an item defined in file B", and prints each cycle in it.
Exit status: 0 without a cycle, 1 with one, 2 on a usage error.

What counts as a reference from file A to file B:
- a `use` import of an item defined in B, when the imported name is used in A outside `use`
  statements (a `pub use` that only re-exports is the module's interface, not a use), and every
  glob import (`use super::*`) or `use ... as _`;
- a path in code: `crate::a::b::item`, `super::item`, `self::item`, or a path whose first segment
  is a child module or an imported name (`forward::Context`, `Model::load`).

Paths are resolved to the file that *defines* the item, following re-exports (`pub use`) and
imports through the modules they pass; a path that ends on a module refers to that module's file,
and an item the checker cannot find refers to the file of the module named. Inline modules belong
to the file they are written in. A `mod x;` declaration is no edge. Test code is left out:
`#[cfg(test)]` items (`mod tests { ... }`, `mod tests;`), comments, doc comments, string literals
and attributes. Items defined by macros and methods defined in `impl` blocks of other files are
not seen (a method call refers to the file defining its type).
"""

import os
import sys
from collections import defaultdict

ITEM_KEYWORDS = {"fn", "struct", "enum", "union", "trait", "type", "const", "static", "mod"}


# --- lexing -----------------------------------------------------------------------------------


def lex(text):
    """Tokens of Rust source as (kind, text, line): kind is 'id', 'num', 'punct' or 'lifetime'.
    Comments, strings and char literals are dropped."""
    toks = []
    i, n, line = 0, len(text), 1

    def skip_string(i, raw_hashes=None):
        # i points just after the opening quote; returns the index after the closing one.
        nonlocal line
        if raw_hashes is not None:
            close = '"' + "#" * raw_hashes
            j = text.find(close, i)
            if j < 0:
                j = n
            line += text.count("\n", i, j)
            return j + len(close)
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 < n and text[i + 1] == "\n":
                    line += 1
                i += 2
                continue
            if c == "\n":
                line += 1
            if c == '"':
                return i + 1
            i += 1
        return n

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        line += 1
                    i += 1
        elif c == '"':
            i = skip_string(i + 1)
        elif c in "rbc" and _raw_string_start(text, i) is not None:
            i, hashes = _raw_string_start(text, i)
            i = skip_string(i, hashes)
        elif c in "bc" and i + 1 < n and text[i + 1] == '"':
            i = skip_string(i + 2)
        elif c == "b" and i + 1 < n and text[i + 1] == "'":
            i = _skip_char(text, i + 1)
        elif c == "'":
            j = _skip_char(text, i)
            if j is not None:
                i = j
            else:  # a lifetime or a label
                j = i + 1
                while j < n and (text[j].isalnum() or text[j] == "_"):
                    j += 1
                toks.append(("lifetime", text[i:j], line))
                i = j
        elif c == "r" and text.startswith("r#", i) and i + 2 < n and _ident_start(text[i + 2]):
            j = i + 2
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(("id", text[i + 2 : j], line))
            i = j
        elif _ident_start(c):
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            toks.append(("id", text[i:j], line))
            i = j
        elif c.isdigit():
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_" or
                             (text[j] == "." and j + 1 < n and text[j + 1].isdigit())):
                j += 1
            toks.append(("num", text[i:j], line))
            i = j
        elif text.startswith("::", i):
            toks.append(("punct", "::", line))
            i += 2
        else:
            toks.append(("punct", c, line))
            i += 1
    return toks


def _ident_start(c):
    return c.isalpha() or c == "_"


def _raw_string_start(text, i):
    """(index after the opening quote, number of #) when a raw string starts at i."""
    j = i
    if text.startswith("br", j) or text.startswith("cr", j):
        j += 2
    elif text[j] == "r":
        j += 1
    else:
        return None
    h = 0
    while j < len(text) and text[j] == "#":
        h, j = h + 1, j + 1
    if j < len(text) and text[j] == '"' and (h > 0 or j == i + 1 or j == i + 2):
        return j + 1, h
    return None


def _skip_char(text, i):
    """Index after a char literal starting at the quote at i, or None (a lifetime)."""
    n = len(text)
    if i + 1 < n and text[i + 1] == "\\":
        j = i + 2
        while j < n and text[j] != "'":
            j += 1
        return j + 1
    if i + 2 < n and text[i + 2] == "'":
        return i + 3
    return None


# --- parsing ----------------------------------------------------------------------------------


class Module:
    def __init__(self, path, file, parent):
        self.path = path  # tuple of names from the crate root
        self.file = file
        self.parent = parent
        self.children = {}  # name -> Module
        self.defs = set()  # names of items defined here
        self.imports = {}  # local name -> list of segments (as written, relative to this module)
        self.globs = []  # segment lists of glob imports


class Ref:
    def __init__(self, file, line, module, segments, text, name=None, always=True):
        self.file, self.line, self.module = file, line, module
        self.segments, self.text = segments, text
        self.name = name  # the local name a `use` binds (the edge counts when it is used)
        self.always = always


class Crate:
    def __init__(self, root_dir, root_file):
        self.root_dir = root_dir
        self.files = []
        self.refs = []
        self.used_names = {}  # file -> set of identifiers used outside `use` statements
        self.missing = []  # (file, line, module name) of `mod x;` without a file
        self.test_files = set()  # files of `#[cfg(test)] mod x;` (left out)
        self.root = Module((), root_file, None)
        self._parse_file(self.root, root_file)

    # Attributes, cfg(test) items and `use` trees.

    def _parse_file(self, module, path):
        self.files.append(path)
        with open(path, encoding="utf-8") as f:
            toks = lex(f.read())
        used = set()
        self.used_names[path] = used
        # The module stack: (module, brace depth of its body).
        stack = [(module, 0)]
        depth = 0
        i, n = 0, len(toks)
        pending_attrs = []
        while i < n:
            kind, text, line = toks[i]
            mod, body = stack[-1]
            if text == "#" and kind == "punct":
                j = i + 1
                if j < n and toks[j][1] == "!":
                    j += 1
                if j < n and toks[j][1] == "[":
                    end = _matching(toks, j)
                    pending_attrs.append(toks[j + 1 : end])
                    i = end + 1
                    continue
            if pending_attrs and _is_test_only(pending_attrs):
                pending_attrs = []
                end = _skip_item(toks, i)
                words = [t[1] for t in toks[i:end]]
                if "mod" in words and words[-1] == ";":
                    name = words[words.index("mod") + 1]
                    self.test_files.add(self._child_path(mod, name, path))
                i = end
                continue
            attrs, pending_attrs = pending_attrs, []
            if kind == "punct" and text == "{":
                depth += 1
                i += 1
                continue
            if kind == "punct" and text == "}":
                depth -= 1
                if len(stack) > 1 and depth < stack[-1][1]:
                    stack.pop()
                i += 1
                continue
            if kind == "id" and text == "use" and (i == 0 or toks[i - 1][1] != "::"):
                j = i + 1
                end = j
                while end < n and toks[end][1] != ";":
                    end += 1
                for segs, name, glob in _use_tree(toks[j:end]):
                    if not segs:
                        continue
                    if depth == body:
                        if glob:
                            mod.globs.append(segs)
                        elif name != "_":
                            mod.imports[name] = segs
                    # An import (a re-export too) is an edge when the file uses the name.
                    always = glob or name == "_"
                    text = "use " + "::".join(segs) + ("::*" if glob else "")
                    self.refs.append(Ref(path, line, mod, segs, text, name, always))
                i = end + 1
                continue
            if kind == "id" and depth == body and text in ITEM_KEYWORDS:
                name_i = self._item_name(toks, i)
                if text == "mod" and name_i is not None:
                    name = toks[name_i][1]
                    nxt = toks[name_i + 1][1] if name_i + 1 < n else ""
                    if nxt == "{":
                        child = Module(mod.path + (name,), path, mod)
                        mod.children[name] = child
                        mod.defs.add(name)
                        depth += 1
                        stack.append((child, depth))
                        i = name_i + 2
                        continue
                    if nxt == ";":
                        self._child_file(mod, name, path, attrs, line)
                        i = name_i + 2
                        continue
                if name_i is not None:
                    mod.defs.add(toks[name_i][1])
                    i = name_i + 1
                    continue
            if kind == "id" and text == "macro_rules" and i + 2 < n and toks[i + 1][1] == "!":
                mod.defs.add(toks[i + 2][1])
                i += 3
                continue
            if kind == "id":
                # A path: the longest chain `a::b::c` starting here.
                if i > 0 and toks[i - 1][1] == "::":
                    used.add(text)
                    i += 1
                    continue
                segs = [text]
                j = i + 1
                while j + 1 < n and toks[j][1] == "::" and toks[j + 1][0] == "id":
                    segs.append(toks[j + 1][1])
                    j += 2
                used.add(text)
                if i > 0 and toks[i - 1][1] == "$" and text == "crate":
                    segs[0] = "crate"
                if len(segs) > 1:
                    self.refs.append(Ref(path, line, mod, segs, "::".join(segs)))
                    for s in segs[1:]:
                        used.add(s)
                i = j
                continue
            i += 1

    def _item_name(self, toks, i):
        """Index of the name an item keyword at i introduces, or None."""
        n = len(toks)
        kw = toks[i][1]
        j = i + 1
        if kw == "const" and j < n and toks[j][1] in ("fn", "unsafe", "async", "extern"):
            return None  # `const fn`: the `fn` names it
        if kw == "static" and j < n and toks[j][1] == "mut":
            j += 1
        if kw in ("type", "const", "static") and i > 0 and toks[i - 1][1] in ("impl", "dyn", "&"):
            return None
        if j < n and toks[j][0] == "id" and toks[j][1] != "_":
            return j
        return None

    def _child_path(self, mod, name, path):
        """The file of `mod name;` written in `path` inside module `mod` (None if none)."""
        # The directory for children of `mod`: a root or mod.rs file's directory, else the
        # directory named after the file; inline modules add their names.
        base = os.path.dirname(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        file_mod = mod
        inline = []
        while file_mod.parent is not None and file_mod.file == file_mod.parent.file:
            inline.append(file_mod.path[-1])
            file_mod = file_mod.parent
        d = base if (file_mod.parent is None or stem == "mod") else os.path.join(base, stem)
        for p in reversed(inline):
            d = os.path.join(d, p)
        for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
            if os.path.isfile(cand):
                return cand
        return None

    def _child_file(self, mod, name, path, attrs, line):
        if any(a and a[0][1] == "path" for a in attrs):
            sys.exit(f"{path}:{line}: #[path] on `mod {name};` is not supported")
        target = self._child_path(mod, name, path)
        if target is None:
            self.missing.append((path, line, name))
            return
        child = Module(mod.path + (name,), target, mod)
        mod.children[name] = child
        mod.defs.add(name)
        self._parse_file(child, target)

    # Resolution.

    def resolve(self, module, segs, seen=None):
        """The file defining what `segs` (written in `module`) names, or None (outside the crate)."""
        if seen is None:
            seen = set()
        key = (module.path, tuple(segs))
        if key in seen:
            return None
        seen.add(key)
        segs = list(segs)
        first = segs[0]
        if first == "crate":
            cur, rest = self.root, segs[1:]
        elif first in ("super", "self"):
            cur = module
            k = 0
            while k < len(segs) and segs[k] in ("super", "self"):
                if segs[k] == "super":
                    if cur.parent is None:
                        return None
                    cur = cur.parent
                k += 1
            rest = segs[k:]
        elif first in module.children:
            cur, rest = module.children[first], segs[1:]
        elif first in module.imports and module.imports[first][0] != first:
            return self.resolve(module, module.imports[first] + segs[1:], seen)
        else:
            return None  # another crate, or a name of this module (`Self::`, `Arch::Llama`)
        for k, s in enumerate(rest):
            if s in cur.children:
                cur = cur.children[s]
                continue
            if s in cur.defs:
                return cur.file
            if s in cur.imports:
                return self.resolve(cur, cur.imports[s] + rest[k + 1 :], seen)
            for g in cur.globs:
                f = self.resolve(cur, g + rest[k:], seen)
                if f is not None:
                    return f
            return cur.file
        return cur.file

    def edges(self):
        """{(a, b): [(line, text), ...]} for every reference from file a to another file b."""
        out = defaultdict(list)
        for r in self.refs:
            if not r.always and r.name not in self.used_names[r.file]:
                continue
            target = self.resolve(r.module, r.segments)
            if target is not None and target != r.file:
                out[(r.file, target)].append((r.line, r.text))
        return out


def _matching(toks, i):
    """Index of the bracket closing the one at i."""
    pairs = {"[": "]", "(": ")", "{": "}"}
    open_, close = toks[i][1], pairs[toks[i][1]]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j][1] == open_:
            depth += 1
        elif toks[j][1] == close:
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def _is_test_only(attrs):
    """Whether one of the attributes is `cfg(test)` (or a cfg that needs `test`)."""
    for a in attrs:
        words = [t[1] for t in a]
        if words and words[0] == "cfg" and "test" in words and "not" not in words:
            return True
    return False


def _skip_item(toks, i):
    """Index after the item starting at i (up to its `;` or its closing brace)."""
    depth = 0
    n = len(toks)
    while i < n:
        t = toks[i][1]
        if t in ("(", "["):
            depth += 1
        elif t in (")", "]"):
            depth -= 1
        elif t == ";" and depth == 0:
            return i + 1
        elif t == "{" and depth == 0:
            return _matching(toks, i) + 1
        i += 1
    return n


def _use_tree(toks, prefix=()):
    """Flatten a use tree: [(segments, local name, is_glob)]."""
    out = []
    i, n = 0, len(toks)
    if i < n and toks[i][1] == "::":
        i += 1
    segs = list(prefix)
    while i < n:
        t = toks[i][1]
        if t == "{":
            for part in _split_commas(toks[i + 1 : _matching(toks, i)]):
                out.extend(_use_tree(part, segs))
            return out
        if t == "*":
            return [(segs, None, True)]
        if toks[i][0] == "id":
            alias = toks[i + 2][1] if i + 2 < n and toks[i + 1][1] == "as" else None
            if t == "self" and segs:  # `a::{self}`
                return [(segs, alias or segs[-1], False)]
            segs.append(t)
            if i + 1 < n and toks[i + 1][1] == "::":
                i += 2
                continue
            return [(segs, alias or t, False)]
        i += 1
    return out


def _split_commas(toks):
    parts, cur, depth = [], [], 0
    for t in toks:
        if t[1] == "{":
            depth += 1
        elif t[1] == "}":
            depth -= 1
        if t[1] == "," and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        parts.append(cur)
    return parts


# --- cycles -----------------------------------------------------------------------------------


def strongly_connected(nodes, succ):
    """Tarjan's components with more than one node, each sorted."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
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

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sorted(out)


def elementary_cycles(comp, succ, limit):
    """The simple cycles inside one component (each once, from its smallest file), at most
    `limit` of them."""
    comp_set = set(comp)
    order = {v: k for k, v in enumerate(comp)}
    cycles = []
    for s in comp:
        # Cycles whose smallest node is s.
        path, blocked = [s], {s}

        def dfs(v):
            for w in sorted(succ[v]):
                if w not in comp_set or order[w] < order[s]:
                    continue
                if w == s:
                    cycles.append(list(path))
                    if len(cycles) >= limit:
                        return True
                elif w not in blocked:
                    blocked.add(w)
                    path.append(w)
                    if dfs(w):
                        return True
                    path.pop()
                    blocked.discard(w)
            return False

        if dfs(s):
            return cycles, True
    return cycles, False


# --- main -------------------------------------------------------------------------------------


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    if len(args) != 1 or flags - {"--edges"} or not os.path.isdir(args[0]):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        print("usage: check-imports.py [--edges] CRATE_SRC_DIR", file=sys.stderr)
        return 2
    src = os.path.normpath(args[0])
    roots = [os.path.join(src, r) for r in ("lib.rs", "main.rs")
             if os.path.isfile(os.path.join(src, r))]
    if not roots:
        print(f"check-imports: no lib.rs or main.rs in {src}", file=sys.stderr)
        return 2
    all_rs = set()
    for d, _, fs in os.walk(src):
        all_rs.update(os.path.join(d, f) for f in fs if f.endswith(".rs"))

    seen_files = set()
    test_files = set()
    n_edges = 0
    groups = []
    missing = []
    for root in roots:
        crate = Crate(src, root)
        seen_files.update(crate.files)
        test_files.update(f for f in crate.test_files if f)
        missing.extend(crate.missing)
        edges = crate.edges()
        n_edges += len(edges)
        succ = defaultdict(set)
        for a, b in edges:
            succ[a].add(b)
        if "--edges" in flags:
            for (a, b), where in sorted(edges.items()):
                line, text = where[0]
                print(f"edge {a}:{line} -> {b}  ({text})")
        for comp in strongly_connected(crate.files, succ):
            groups.append((comp, succ, edges))

    unread = sorted(all_rs - seen_files - test_files)
    print(f"check-imports: {src}: {len(seen_files)} files read from "
          f"{', '.join(os.path.basename(r) for r in roots)}, {n_edges} file-to-file edges")
    if test_files:
        print(f"left out as test code: {', '.join(sorted(test_files))}")
    for path, line, name in missing:
        print(f"warning: {path}:{line}: `mod {name};` has no file")
    for f in unread:
        print(f"note: {f} is in no module tree (not read)")
    if not groups:
        print("no cycle")
        return 0
    n_cycles = 0
    for k, (comp, succ, edges) in enumerate(groups, 1):
        print(f"\ngroup {k}: {len(comp)} files that depend on each other:")
        for f in comp:
            print(f"  {f}")
        print("  edges inside the group (first reference):")
        for a in comp:
            for b in sorted(succ[a]):
                if b in comp:
                    line, text = edges[(a, b)][0]
                    more = len(edges[(a, b)]) - 1
                    extra = f" (+{more} more)" if more else ""
                    print(f"    {a}:{line} -> {b}  `{text}`{extra}")
        cycles, cut = elementary_cycles(comp, succ, 500)
        n_cycles += len(cycles)
        print(f"  cycles ({len(cycles)}{', the first 500' if cut else ''}):")
        for c in cycles:
            print("    " + " -> ".join(c + [c[0]]))
    print(f"\n{len(groups)} group(s) of files in cycles, {n_cycles} cycle(s)")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
