#!/usr/bin/env python3
"""Medians of hyperfine --export-json files, each beside the first
command's (the ratio other/first), for the benchmark scripts."""
import json
import statistics
import sys

for path in sys.argv[1:]:
    results = json.load(open(path))["results"]
    base = statistics.median(results[0]["times"])
    for r in results:
        m = statistics.median(r["times"])
        name = r["command"] if len(r["command"]) <= 70 else r["command"][:67] + "..."
        print(f"  {m * 1000:9.1f} ms  {m / base:6.2f}x  {name}")
