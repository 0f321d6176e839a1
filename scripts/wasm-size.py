#!/usr/bin/env python3
"""Where do the bytes of a wasm module go?

Parses the code section (body size of every defined function) and the `name` section
(function names), demangles Rust names roughly and prints the largest functions and the
totals per crate (and per crate::module). Pure Python, no dependencies.

Usage: scripts/wasm-size.py [-n TOP] [--depth N] [--grep TEXT] FILE.wasm

Run it on the un-bindgen'd `target/wasm32-unknown-unknown/wasm-release/frontend.wasm`:
wasm-bindgen is run with --remove-name-section, so the shipped `_bg.wasm` has no names
(the script then still prints the section sizes).

Attribution is by the function's own path: a generic function instantiated for an app
type is counted under the crate that defines the generic (`tachys::...` for a view
built in `app`). `--grep app::` lists such instantiations whose name mentions a path.
"""

import argparse
import re
import sys
from collections import defaultdict

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
    6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
    12: "datacount",
}


def leb_u(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def read_name(buf, pos):
    n, pos = leb_u(buf, pos)
    return buf[pos:pos + n].decode("utf-8", "replace"), pos + n


def parse(buf):
    if buf[:4] != b"\0asm":
        sys.exit("not a wasm module")
    pos = 8
    sections = []  # (label, size)
    imported_funcs = 0
    bodies = []  # sizes of defined functions, in order
    names = {}
    data_size = 0
    while pos < len(buf):
        sid = buf[pos]
        size, p = leb_u(buf, pos + 1)
        end = p + size
        label = SECTION_NAMES.get(sid, str(sid))
        if sid == 0:
            cname, q = read_name(buf, p)
            label = "custom:" + cname
            if cname == "name":
                while q < end:
                    sub = buf[q]
                    sub_size, q = leb_u(buf, q + 1)
                    sub_end = q + sub_size
                    if sub == 1:  # function names
                        count, r = leb_u(buf, q)
                        for _ in range(count):
                            idx, r = leb_u(buf, r)
                            nm, r = read_name(buf, r)
                            names[idx] = nm
                    q = sub_end
        elif sid == 2:
            count, q = leb_u(buf, p)
            for _ in range(count):
                _, q = read_name(buf, q)
                _, q = read_name(buf, q)
                kind = buf[q]
                q += 1
                if kind == 0:  # func: type index
                    _, q = leb_u(buf, q)
                    imported_funcs += 1
                elif kind == 1:  # table: reftype + limits
                    q += 1
                    flags, q = leb_u(buf, q)
                    _, q = leb_u(buf, q)
                    if flags & 1:
                        _, q = leb_u(buf, q)
                elif kind == 2:  # memory: limits
                    flags, q = leb_u(buf, q)
                    _, q = leb_u(buf, q)
                    if flags & 1:
                        _, q = leb_u(buf, q)
                elif kind == 3:  # global: valtype + mut
                    q += 2
                else:
                    sys.exit(f"unknown import kind {kind}")
        elif sid == 10:
            count, q = leb_u(buf, p)
            for _ in range(count):
                bsize, r = leb_u(buf, q)
                bodies.append(r + bsize - q)  # include the size prefix
                q = r + bsize
        elif sid == 11:
            data_size = size
        sections.append((label, end - pos))
        pos = end
    funcs = []
    for i, size in enumerate(bodies):
        idx = imported_funcs + i
        funcs.append((size, names.get(idx, f"func[{idx}]")))
    return sections, funcs, data_size, bool(names)


# --- rough demangling ---------------------------------------------------------------

LEGACY_ESC = {"$LT$": "<", "$GT$": ">", "$RF$": "&", "$BP$": "*", "$C$": ",",
              "$u20$": " ", "$u27$": "'", "$u5b$": "[", "$u5d$": "]", "$u7b$": "{",
              "$u7d$": "}", "$u3b$": ";", "$u2b$": "+", "$u22$": '"', "$LP$": "(",
              "$RP$": ")", "$SP$": "@"}


def demangle_legacy(sym):
    # _ZN <len><ident>... E
    body = sym[3:]
    parts = []
    i = 0
    while i < len(body) and body[i].isdigit():
        j = i
        while body[j].isdigit():
            j += 1
        n = int(body[i:j])
        parts.append(body[j:j + n])
        i = j + n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    out = "::".join(parts)
    for k, v in LEGACY_ESC.items():
        out = out.replace(k, v)
    out = out.replace("..", "::")
    if out.startswith("_"):
        out = out[1:]
    return out


def demangle_v0_path(sym):
    # Very rough: collect the identifiers (<len><ident>, optional `u` punycode prefix,
    # `_` separator when the identifier starts with a digit or `_`) in order.
    s = sym[2:]
    # drop crate/impl disambiguators (`Cs1a2B_`, `Ms0_`, `Nvs3_`) and back-references
    # (`B5_`), whose digits would otherwise read as identifier lengths
    s = re.sub(r"(C|M|X|Y|N[A-Za-z])s[0-9A-Za-z]*_", r"\1", s)
    s = re.sub(r"B[0-9A-Za-z]*_", "", s)
    idents = []
    i = 0
    while i < len(s):
        c = s[i]
        if c.isdigit():
            j = i
            while j < len(s) and s[j].isdigit():
                j += 1
            n = int(s[i:j])
            if j < len(s) and s[j] == "_":
                j += 1
            idents.append(s[j:j + n])
            i = j + n
        else:
            i += 1
    return "::".join(idents)


def demangle(name):
    if name.startswith("_ZN"):
        return demangle_legacy(name)
    if name.startswith("_R"):
        return demangle_v0_path(name)
    return name


def crate_of(dem, depth):
    """Crate (depth 1) or crate::module (depth 2) of a demangled name.

    For `<T as Trait>::method` the implementing type's path is used, since that is the
    code that was written; for `<&T as Trait>` the referent is used.
    """
    s = dem
    if s.startswith("<"):
        s = s[1:].lstrip("&*").replace("mut ", "").replace("const ", "").lstrip("[(")
        s = re.split(r"[ <>,;\[\]()]", s, maxsplit=1)[0]
        if not s or "::" not in s:
            # e.g. `<u8 as core::fmt::Debug>::fmt`: fall back on the trait's crate
            m = re.search(r" as ([A-Za-z_][\w:]*)", dem)
            s = m.group(1) if m else (s or dem)
    else:
        s = re.split(r"[ <>,;\[\]()]", s, maxsplit=1)[0]
    parts = [p for p in s.split("::") if p]
    if not parts:
        return "?"
    if "::" not in s and not dem.startswith(("_ZN", "_R")):
        # plain symbol (exports, C, compiler-builtins intrinsics, bindgen shims)
        if s.startswith("__wbg") or s.startswith("__wbindgen") or s.startswith("__externref"):
            return "wasm-bindgen shims"
        return "(unmangled) " + s if depth > 1 else "(unmangled)"
    return "::".join(parts[:depth])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wasm")
    ap.add_argument("-n", "--top", type=int, default=30, help="functions / groups to list")
    ap.add_argument("--depth", type=int, default=1, help="path segments per group (1 = crate)")
    ap.add_argument("--grep", help="only functions whose demangled name contains this")
    ap.add_argument("--owner", metavar="CRATE",
                    help="group by the first CRATE::module named anywhere in the name, so "
                         "generic code instantiated for a type of CRATE counts there (needs "
                         "v0 symbols: RUSTFLAGS='-C symbol-mangling-version=v0')")
    args = ap.parse_args()

    buf = open(args.wasm, "rb").read()
    sections, funcs, data_size, have_names = parse(buf)

    print(f"{args.wasm}: {len(buf):,} bytes")
    print("\nSections:")
    for label, size in sorted(sections, key=lambda x: -x[1]):
        print(f"  {size:>10,}  {label}")
    code_total = sum(s for s, _ in funcs)
    print(f"\n{len(funcs):,} defined functions, {code_total:,} bytes of code, "
          f"{data_size:,} bytes of data")
    if not have_names:
        print("\nno name section: build without stripping to attribute code")
        return

    rows = [(size, demangle(n)) for size, n in funcs]
    if args.grep:
        rows = [r for r in rows if args.grep in r[1]]
        print(f"\n{len(rows):,} functions matching {args.grep!r}: "
              f"{sum(s for s, _ in rows):,} bytes")

    groups = defaultdict(lambda: [0, 0])
    owner_re = re.compile(r"\b" + re.escape(args.owner or "") + r"((?:::(?!_::)[A-Za-z_]\w*){1,%d})" % args.depth)
    for size, dem in rows:
        if args.owner:
            m = owner_re.search(dem)
            key = args.owner + m.group(1) if m else "(other)"
        else:
            key = crate_of(dem, args.depth)
        g = groups[key]
        g[0] += size
        g[1] += 1
    total = sum(s for s, _ in rows) or 1
    print(f"\nCode by {'crate' if args.depth == 1 else 'path prefix'} (top {args.top}):")
    print(f"  {'bytes':>10}  {'%':>5}  {'fns':>5}  group")
    for name, (size, n) in sorted(groups.items(), key=lambda x: -x[1][0])[:args.top]:
        print(f"  {size:>10,}  {100 * size / total:5.1f}  {n:>5}  {name}")

    print(f"\nLargest functions (top {args.top}):")
    for size, dem in sorted(rows, key=lambda x: -x[0])[:args.top]:
        print(f"  {size:>8,}  {dem[:160]}")


if __name__ == "__main__":
    main()
