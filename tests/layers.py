#!/usr/bin/python3
"""The layering check: fails when a file includes a header from a layer above
its own, or when a layer holds what DESIGN forbids it.

The layers from the bottom up (docs/architecture.md):

    src/base  <- src/wire  <- src/redis  <- actors  <- src/net  <- src/*.cpp (top)

A file may include headers of its own layer and of the layers below. Two more
rules keep the ownership split visible: actors/ holds no socket code (no
Asio, Beast or socket headers), and src/net holds no actor state (no
stateful actors). Every source file under src/ or actors/ must sit in a known
layer, so a new folder has to be placed here before it builds into the node.

usage: layers.py [REPO_ROOT]      exit status 1 on any violation
       layers.py --self-test        the check catches each kind of violation
"""

import re
import sys
import tempfile
from pathlib import Path

LAYERS = ["src/base", "src/wire", "src/redis", "actors", "src/net", "src"]
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]', re.M)
SOCKET_HEADERS = re.compile(r"^(boost/asio|boost/beast/(core|http)|sys/socket|netinet/|arpa/)")
ACTOR_STATE_HEADERS = re.compile(r"^caf/(stateful_actor|typed_event_based_actor)\.hpp$")


def layer_of(path):
    """The rank of the layer a repo-relative path belongs to, or None. A
    layer's subfolders (actors/presence) are part of it; src/ itself is the
    top only for the files directly in it."""
    folder = Path(path).parent.as_posix()
    for rank, layer in enumerate(LAYERS):
        if folder == layer or (layer != "src" and folder.startswith(layer + "/")):
            return rank
    return None


def violations(root):
    found = []
    for file in sorted(list(root.glob("src/**/*.[ch]pp")) + list(root.glob("actors/**/*.[ch]pp"))):
        rel = file.relative_to(root).as_posix()
        rank = layer_of(rel)
        if rank is None:
            found.append(f"{rel}: not in a known layer ({', '.join(LAYERS)})")
            continue
        for header in INCLUDE.findall(file.read_text(encoding="utf-8")):
            found.extend(check_include(rel, rank, header))
    return found


def check_include(rel, rank, header):
    if header.startswith(("src/", "actors/")):
        target = layer_of(header)
        if target is None:
            return [f"{rel}: includes {header}, which is in no known layer"]
        if target > rank:
            return [f"{rel} ({LAYERS[rank]}) includes {header} ({LAYERS[target]}), a layer above it"]
    if LAYERS[rank] == "actors" and SOCKET_HEADERS.match(header):
        return [f"{rel}: actors/ holds no socket code, but it includes <{header}>"]
    if LAYERS[rank] == "src/net" and ACTOR_STATE_HEADERS.match(header):
        return [f"{rel}: the network edge holds no actor state, but it includes {header}"]
    return []


def self_test():
    """Each rule, broken once in a scratch tree, must be reported."""
    cases = {
        "src/wire/up.hpp": '#include "actors/hub.hpp"\n',
        "actors/sock.cpp": "#include <boost/asio/ip/tcp.hpp>\n",
        "src/net/state.cpp": '#include "caf/stateful_actor.hpp"\n',
        "src/odd/x.cpp": "\n",
        "src/base/ok.hpp": '#include "src/base/types.hpp"\n',
        "actors/part/ok.cpp": '#include "src/redis/keys.hpp"\n',
        "actors/part/up.cpp": '#include "src/net/listener.hpp"\n',
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rel, text in cases.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        found = violations(root)
    caught = {line.split(":")[0].split(" ")[0] for line in found}
    expected = set(cases) - {"src/base/ok.hpp", "actors/part/ok.cpp"}
    print("\n".join(found))
    if caught != expected:
        print(f"layers self-test: expected violations in {sorted(expected)}, got {sorted(caught)}")
        return 1
    print("layers self-test: every rule caught")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    found = violations(root)
    for line in found:
        print(line)
    print(f"layers: {len(found)} violation(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
