#!/usr/bin/env python3
"""Render docs/RELIABILITY.md from the fault suite's last run: one row per
test of tests/tests/faults, from the record it wrote in FAULTS_DIR after
its assertions passed. A test listed in FAULTS_DIR/expected (the suite's
`--list`) without a record failed or did not run: its row says so, and
this script exits 1.

  scripts/reliability.py [FAULTS_DIR]   (default: target/faults)"""
import json
import pathlib
import sys
import time

root = pathlib.Path(__file__).resolve().parent.parent
faults = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "target" / "faults"
records = {}
for f in sorted(faults.glob("*.json")):
    try:
        r = json.loads(f.read_text())
        records[r.get("test", f.stem)] = r
    except (OSError, ValueError) as e:
        print(f"reliability: skipping {f}: {e}", file=sys.stderr)
expected_file = faults / "expected"
expected = expected_file.read_text().split() if expected_file.exists() else []
missing = [t for t in expected if t not in records]
if not records and not missing:
    sys.exit("reliability: no fault records in %s (run scripts/test.sh)" % faults)
last = max([r.get("at", 0) for r in records.values()] or [time.time()])
out = [
    "# Reliability",
    "",
    "What each fault or hostile input did to the suite in the last run of the fault",
    "suite (`tests/tests/faults`, part of `scripts/test.sh`), rendered by",
    "`scripts/reliability.py` from that run. A test writes its row only after every",
    "assertion passed, so \"Lost\" is what it checked was lost; a test that failed",
    "has a FAILED row instead.",
    "",
    "Last run: %s UTC; %d of %d tests passed." % (
        time.strftime("%Y-%m-%d %H:%M", time.gmtime(last)), len(records), len(records) + len(missing)),
    "",
    "| Fault or hostile input | Tried | Lost | Test |",
    "|---|---:|---|---|",
]
for r in sorted(records.values(), key=lambda r: r["fault"]):
    out.append("| %s | %d | %s | `%s` |" % (r["fault"], r["tries"], r["lost"], r.get("test", "")))
for t in missing:
    out.append("| **FAILED**: no record | 0 | unknown: the test failed or did not run | `%s` |" % t)
(root / "docs").mkdir(exist_ok=True)
(root / "docs" / "RELIABILITY.md").write_text("\n".join(out) + "\n")
print("reliability: %d passed, %d failed -> docs/RELIABILITY.md" % (len(records), len(missing)))
sys.exit(1 if missing else 0)
