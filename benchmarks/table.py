"""Turn a pytest-benchmark JSON file into the README's Markdown table.

    pytest benchmarks/ --benchmark-only --benchmark-json=bench.json
    python benchmarks/table.py bench.json

One row per group (network x rule x mode x dtype): the medians of lrpfast and
of each other contender, and the ratios (contender median / lrpfast median;
for ``matmul-floor`` it is lrpfast / floor, the factor above the floor).
"""

import json
import re
import sys
from collections import defaultdict


def load(path):
    with open(path) as fh:
        data = json.load(fh)
    groups = defaultdict(dict)
    for bench in data["benchmarks"]:
        contender = re.search(r"-(lrpfast|reference|zennit|captum|matmul-floor)\]",
                              bench["name"]).group(1)
        groups[bench["group"]][contender] = bench["stats"]["median"]
    return data.get("machine_info", {}), groups


def ms(t):
    return f"{t * 1e3:.3g} ms" if t >= 1e-4 else f"{t * 1e6:.3g} µs"


def table(groups):
    lines = ["| group | lrpfast | vs reference | vs zennit | vs captum | over matmul floor |",
             "|---|---|---|---|---|---|"]
    for group in sorted(groups):
        g = groups[group]
        if "lrpfast" not in g:
            continue
        ours = g["lrpfast"]

        def ratio(name):
            return f"{g[name] / ours:.1f}x ({ms(g[name])})" if name in g else "–"
        floor = f"{ours / g['matmul-floor']:.2f}x ({ms(g['matmul-floor'])})" \
            if "matmul-floor" in g else "–"
        lines.append(f"| {group} | {ms(ours)} | {ratio('reference')} | {ratio('zennit')} "
                     f"| {ratio('captum')} | {floor} |")
    return "\n".join(lines)


if __name__ == "__main__":
    info, groups = load(sys.argv[1])
    cpu = info.get("cpu", {})
    print(f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; "
          f"Python {info.get('python_version', '?')}\n")
    print(table(groups))
