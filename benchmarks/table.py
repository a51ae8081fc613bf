"""Turn a pytest-benchmark JSON file into the README's Markdown table.

    pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/table.py bench.json [more.json ...]

Several files (for example one run of lrpfast and the reference, and one of
the PyTorch peers, each in its own process) are merged group by group.

One row per group (network x rule x mode x dtype): the medians of lrpfast and
of each other contender, and the ratios (contender median / lrpfast median;
for ``matmul-floor`` and ``forward-floor``, the bare forwards that bound
pixel flipping, it is lrpfast / floor, the factor above the floor), and
"÷ epsilon": lrpfast's median over lrpfast's epsilon median in the same
network, mode and dtype (the cost of the rule against the cheapest one).
"""

import json
import re
import sys
from collections import defaultdict


def load(paths):
    groups = defaultdict(dict)
    data = {}
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        _add(data, groups)
    return data.get("machine_info", {}), groups


def _add(data, groups):
    for bench in data["benchmarks"]:
        found = re.search(
            r"-(lrpfast|reference|zennit|captum|matmul-floor|forward-floor)\]",
            bench["name"])
        # other suites (Dask, streaming) name their contenders freely: the
        # parameter in brackets; they go to the second table
        contender = found.group(1) if found else re.search(r"\[(.*)\]", bench["name"]).group(1)
        groups[bench["group"]][contender] = bench["stats"]["median"]


def ms(t):
    if t >= 1:
        return f"{t:.3g} s"
    return f"{t * 1e3:.3g} ms" if t >= 1e-4 else f"{t * 1e6:.3g} µs"


def table(groups):
    """Ratios first: how many times faster lrpfast is, then its own median."""
    lines = ["| network, rule, mode, dtype | × reference | × zennit | × captum "
             "| ÷ matmul floor | ÷ epsilon | lrpfast median |",
             "|---|---|---|---|---|---|---|"]
    for group in sorted((g for g in groups if "lrpfast" in groups[g]), key=_order):
        g = groups[group]
        ours = g["lrpfast"]

        def ratio(name):
            return f"{g[name] / ours:.1f}x" if name in g else "–"
        floor = next((f"{ours / g[f]:.2f}" for f in ("matmul-floor", "forward-floor")
                      if f in g), "–")
        net, rule, mode, dtype = group.split()
        eps = groups.get(f"{net} epsilon {mode} {dtype}", {}).get("lrpfast")
        vs_eps = f"{ours / eps:.2f}" if eps and rule != "epsilon" else "–"
        lines.append(f"| {group} | {ratio('reference')} | {ratio('zennit')} "
                     f"| {ratio('captum')} | {floor} | {vs_eps} | {ms(ours)} |")
    return "\n".join(lines)


def other_table(groups):
    """Groups without an ``lrpfast`` row (Dask, streaming): each contender's
    median and its ratio to the group's ``in-memory`` row."""
    lines = ["| group | contender | median | ÷ in-memory |", "|---|---|---|---|"]
    for group in sorted(g for g in groups if "lrpfast" not in groups[g]):
        g = groups[group]
        base = g.get("in-memory")
        for name, t in g.items():
            vs = f"{t / base:.2f}" if base else "–"
            lines.append(f"| {group} | {name} | {ms(t)} | {vs} |")
    return "\n".join(lines)


def _order(group):
    net, rule, mode, dtype = (group.split() + ["?"] * 4)[:4]
    nets = ["seed-36-16-12-2", "mlp-784-1024-1024-10", "wide-4096-4096-10"]
    rules = ["epsilon", "gamma", "alpha-beta", "z-plus", "w-square", "flat",
             "gamma-generalized"]
    return (dtype, mode.startswith("batch"), nets.index(net) if net in nets else 9,
            rules.index(rule) if rule in rules else 9)


if __name__ == "__main__":
    info, groups = load(sys.argv[1:])
    cpu = info.get("cpu", {})
    print(f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; "
          f"Python {info.get('python_version', '?')}\n")
    print(table(groups))
    if any("lrpfast" not in g for g in groups.values()):
        print()
        print(other_table(groups))
