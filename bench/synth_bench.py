"""Wall time of synthesizing every environment and of the test gate, each beside a minimal
one-resource CDK app synthesized in the same run, so the ratios hold across machines.

Run with `make bench` (or `.venv/bin/python bench/synth_bench.py [--runs N] [--skip-test]`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"

MINIMAL_APP = """
import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs

app = cdk.App()
stack = cdk.Stack(app, "Minimal")
sqs.Queue(stack, "Queue")
app.synth()
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def median_of(runs: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    return statistics.median(timed(cmd, cwd, env) for _ in range(runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--skip-test", action="store_true", help="do not time `make test`")
    args = parser.parse_args()

    env = {
        **os.environ,
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    with tempfile.TemporaryDirectory(prefix="minimal-cdk-") as tmp:
        minimal = Path(tmp)
        (minimal / "app.py").write_text(MINIMAL_APP)
        (minimal / "cdk.json").write_text('{"app": "python3 app.py"}\n')
        synth = [str(CDK), "synth", "--quiet"]
        minimal_s = median_of(args.runs, synth, minimal, env)
        outdir = tempfile.mkdtemp(prefix="bench-cdk-out-")
        try:
            project_s = median_of(args.runs, [*synth, "--output", outdir], ROOT, env)
        finally:
            shutil.rmtree(outdir, ignore_errors=True)

    rows = [
        ("minimal one-resource app synth", minimal_s, 1.0, ""),
        ("synth of every environment", project_s, project_s / minimal_s, "target <= 2.0x"),
    ]
    if not args.skip_test:
        test_s = timed(["make", "--no-print-directory", "test"], ROOT, env)
        rows.append(("make test (after setup)", test_s, test_s / minimal_s, "target < 60 s"))

    print(f"{'measurement':<34} {'seconds':>8} {'x minimal':>10}")
    for name, seconds, ratio, target in rows:
        print(f"{name:<34} {seconds:>8.2f} {ratio:>9.2f}x  {target}")
    print(f"(median of {args.runs} runs for synth; {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
