#!/usr/bin/python3
"""The option check: the option reference in README.md and the sample
conf/hubnode.ini agree with the node's own option table, as `hubnode --help`
prints it (src/config.cpp binds each key to a member of node_options, whose
value is the default).

- README.md's `| key | default | meaning |` table: every option of --help, none
  missing, none extra, each default and meaning written as --help prints it.
- conf/hubnode.ini: every option at its default, none missing, none extra.
- conf/cluster-node.ini and conf/production.ini set other values on purpose;
  each key they set must be an option of --help.

Sections of CAF's own options (logger, scheduler, work-stealing) are not in
hubnode's table; the node itself checks their keys at start.

usage: options_check.py HUBNODE_BIN REPO_ROOT               exit status 1 on any mismatch
       options_check.py --self-test HUBNODE_BIN REPO_ROOT   the check catches each kind
"""

import re
import subprocess
import sys
from pathlib import Path

CAF_SECTIONS = {"logger", "scheduler", "work-stealing"}
SAMPLES = ["conf/cluster-node.ini", "conf/production.ini"]
# `  --server.host=      "127.0.0.1"   listen address`; no default has a space in it.
HELP_LINE = re.compile(r"^  --([\w.-]+)=\s+(\S+) +(.*)$")
README_HEADER = "| key | default | meaning |"


def help_options(text):
    """key -> (default, meaning) from `hubnode --help`."""
    found = {}
    for line in text.splitlines():
        match = HELP_LINE.match(line)
        if match:
            found[match[1]] = (match[2], match[3])
    return found


def readme_options(text):
    """key -> (default, meaning) from README.md's option table."""
    lines = text.splitlines()
    if README_HEADER not in lines:
        return {}
    found = {}
    for line in lines[lines.index(README_HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        key, default, meaning = (cell.strip() for cell in line.strip("|").split("|", 2))
        found[key] = (default, meaning)
    return found


def ini_options(text):
    """section.key -> value as written, for the keys of hubnode's sections."""
    found = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section not in CAF_SECTIONS:
            key, _, value = line.partition("=")
            found[f"{section}.{key.strip()}"] = value.strip()
    return found


def compare(name, table, found):
    """What `found` (key -> default) gets wrong against `table`."""
    wrong = [f"{name}: {key} missing" for key in table if key not in found]
    wrong += [f"{name}: {key} is no hubnode option" for key in found if key not in table]
    wrong += [
        f"{name}: {key} = {found[key]}, but its default is {table[key][0]}"
        for key in table
        if key in found and found[key] != table[key][0]
    ]
    return wrong


def compare_meanings(name, table, found):
    """The meanings in `found` (key -> (default, meaning)) other than --help's."""
    return [
        f"{name}: {key} means \"{found[key][1]}\", --help says \"{table[key][1]}\""
        for key in table
        if key in found and found[key][1] != table[key][1]
    ]


def problems(help_text, readme_text, ini_text, samples):
    """Every disagreement; `samples` maps a file name to its text."""
    table = help_options(help_text)
    if not table:
        return ["--help lists no options"]
    readme = readme_options(readme_text)
    found = compare("README.md", table, {key: value[0] for key, value in readme.items()})
    found += compare_meanings("README.md", table, readme)
    found += compare("conf/hubnode.ini", table, ini_options(ini_text))
    for name, text in samples.items():
        found += [f"{name}: {key} is no hubnode option" for key in ini_options(text)
                  if key not in table]
    return found


def read_inputs(binary, root):
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True,
                               check=True).stdout
    return (help_text, (root / "README.md").read_text(encoding="utf-8"),
            (root / "conf/hubnode.ini").read_text(encoding="utf-8"),
            {name: (root / name).read_text(encoding="utf-8") for name in SAMPLES})


def self_test(inputs):
    """Each kind of disagreement, made in a copy of the real files, is found
    and named."""
    help_text, readme, ini, samples = inputs
    cluster = SAMPLES[0]
    rows = README_HEADER + "\n|---|---|---|\n"
    cases = {
        "README.md: server.port = 8081": (
            help_text, readme.replace("| 8080 |", "| 8081 |"), ini, samples),
        'README.md: server.host means "address"': (
            help_text, readme.replace("| listen address |", "| address |"), ini, samples),
        "README.md: server.host missing": (
            help_text, re.sub(r"\| server\.host \|.*\n", "", readme), ini, samples),
        "README.md: server.backlog is no hubnode option": (
            help_text, readme.replace(rows, rows + "| server.backlog | 5 | x |\n"), ini,
            samples),
        "conf/hubnode.ini: hub.rate-limit = 10,": (
            help_text, readme, ini.replace("rate-limit=100", "rate-limit=10"), samples),
        "conf/hubnode.ini: cluster.node-ttl missing": (
            help_text, readme, ini.replace("node-ttl=10s\n", ""), samples),
        "conf/hubnode.ini: hub.sweep is no hubnode option": (
            help_text, readme, ini.replace("[hub]\n", "[hub]\nsweep=1s\n"), samples),
        f"{cluster}: cluster.node-name is no hubnode option": (
            help_text, readme, ini,
            {**samples, cluster: samples[cluster].replace("node-id=", "node-name=")}),
        # A default changed in node_options and nowhere else.
        "conf/hubnode.ini: hub.rate-limit = 100, but its default is 50": (
            re.sub(r"(--hub\.rate-limit=\s+)100", r"\g<1>50", help_text), readme, ini,
            samples),
    }
    failed = [
        f"not caught: {expected}"
        for expected, case in cases.items()
        if not any(found.startswith(expected) for found in problems(*case))
    ]
    failed += ["the real files disagree already"] if problems(*inputs) else []
    for line in failed:
        print(f"self-test: {line}")
    return 1 if failed else 0


def main(args):
    if len(args) == 3 and args[0] == "--self-test":
        return self_test(read_inputs(args[1], Path(args[2])))
    if len(args) != 2:
        print("usage: options_check.py [--self-test] HUBNODE_BIN REPO_ROOT", file=sys.stderr)
        return 2
    found = problems(*read_inputs(args[0], Path(args[1])))
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
