#!/usr/bin/env python3
"""How the default bundle's strict rule for tool output behaves on the shared datasets.

Every labelled record is scanned as `tool_output` with `portcullis scan --jsonl`. The script
then counts how many would be denied under three readings of the rule. The records are
injections and jailbreaks (attacks) and benign texts, which are mostly user prompts read as if
a tool had returned them.

- flagged only;
- flagged, or any injection finding scoring >= 0.5 (the rule before 2026-12-06);
- flagged, or a *rule* finding scoring >= 0.5 (the rule now: unflagged classifier scores do
  not count).

Usage: scripts/tool_output_strictness.py [PORTCULLIS_BIN] [DATASETS_DIR]
(defaults: target/release/portcullis and ../shared/datasets). The figures in docs/policy.md
come from this script.
"""
import json
import pathlib
import subprocess
import sys

CATEGORIES = ("prompt_injection", "jailbreak", "invisible_text")
THRESHOLD = 0.5


def main() -> None:
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/portcullis"
    datasets = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets")
    records = []
    for path in sorted(datasets.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("label") in ("injection", "jailbreak", "benign"):
                records.append(record)
    stdin = "".join(
        json.dumps({"id": i, "text": r["text"], "context": "tool_output"}) + "\n"
        for i, r in enumerate(records)
    )
    out = subprocess.run(
        [binary, "scan", "--jsonl"], input=stdin, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    counts = {"attack": [0, 0, 0, 0], "benign": [0, 0, 0, 0]}
    for record, line in zip(records, out):
        scan = json.loads(line)
        kind = "benign" if record["label"] == "benign" else "attack"
        flagged = any(c in CATEGORIES for c in scan["categories"])
        found = [f for f in scan["findings"] if f["category"] in CATEGORIES]
        any_score = any(f["score"] >= THRESHOLD for f in found)
        rule_score = any(f["score"] >= THRESHOLD and f["rule"] != "classifier" for f in found)
        row = counts[kind]
        row[0] += 1
        row[1] += flagged
        row[2] += flagged or any_score
        row[3] += flagged or rule_score
    for kind, (total, flagged, old, new) in counts.items():
        print(
            f"{kind}: {total} records; denied if flagged: {flagged}; "
            f"flagged or any score >= {THRESHOLD}: {old}; flagged or rule score >= {THRESHOLD}: {new}"
        )


if __name__ == "__main__":
    main()
