"""Print what a cloud assembly holds: one line per stack with its resource count."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(outdir: Path) -> list[str]:
    lines = []
    for manifest_path in sorted(outdir.glob("assembly-*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        for artifact in manifest["artifacts"].values():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            props = artifact["properties"]
            template = json.loads((manifest_path.parent / props["templateFile"]).read_text())
            types = Counter(r["Type"] for r in template.get("Resources", {}).values())
            top = ", ".join(f"{n} {t.split('::', 1)[1]}" for t, n in types.most_common(3))
            lines.append(
                f"{artifact['displayName']:<24} {artifact.get('environment', ''):<28} "
                f"{sum(types.values()):>4} resources ({top})"
            )
    return lines


def main() -> int:
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")
    lines = summarize(outdir)
    if not lines:
        print(f"no stacks found in {outdir}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    print(f"{len(lines)} stacks synthesized into {outdir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
