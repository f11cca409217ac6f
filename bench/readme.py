"""Put the last run's table in the README: ``python -m bench.readme [--baseline]``.

Reads ``bench/results/latest.json`` (what ``scripts/bench`` wrote) and replaces the
first fenced block under ``## Benchmarks`` in README.md with its table, so the
README shows one run, unedited. ``--baseline`` also copies that run to
``bench/baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys

from bench.run import RESULTS, ROOT, Row, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true", help="also refresh baseline.json")
    args = parser.parse_args(argv)
    latest = RESULTS / "latest.json"
    report = json.loads(latest.read_text())
    if report.get("quick"):
        print("bench.readme: latest.json is a --quick run; run scripts/bench", file=sys.stderr)
        return 1
    table = "\n".join(format_table([Row(**row) for row in report["rows"]]))
    readme = ROOT / "README.md"
    text = readme.read_text()
    section = text.index("## Benchmarks")
    pattern = re.compile(r"```\n.*?\n```", re.DOTALL)
    found = pattern.search(text, section)
    if found is None:
        print("bench.readme: no fenced block under ## Benchmarks", file=sys.stderr)
        return 1
    readme.write_text(text[: found.start()] + f"```\n{table}\n```" + text[found.end() :])
    if args.baseline:
        shutil.copyfile(latest, ROOT / "bench" / "baseline.json")
    print(f"README.md: table from the run of {report['when']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
