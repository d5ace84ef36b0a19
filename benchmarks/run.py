"""Run benchmarks and write their sections into docs/benchmarks.md.

    python -m benchmarks.run            # every benchmark (what ``make bench`` does)
    python -m benchmarks.run api        # only one; the other sections stay as they were

Each benchmark is a module ``benchmarks.<name>`` with ``run() -> str`` returning a Markdown
section. Sections sit between markers, so one benchmark can be re-run without the others.
Timing on a shared two-core machine is noisy: every benchmark reports medians and a ratio to
a baseline measured in the same run.
"""

from __future__ import annotations

import importlib
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BENCHMARKS = [
    "engine",
    "api",
    "decisions",
    "publisher",
    "lifecycle",
    "history",
    "push",
    "notifications",
]

HEADER = """# Benchmarks

Produced by `make bench` (`python -m benchmarks.run`); one section can be refreshed alone with
`python -m benchmarks.run NAME`. Each section names the command, the date and the machine it
ran on. The machine is a shared 2-core VM: read the ratios to the baselines measured in the
same run, not the absolute numbers.
"""


def main(names: list[str]) -> int:
    names = names or [name for name in BENCHMARKS if _exists(name)]
    for name in names:
        began = time.monotonic()
        print(f"== benchmark {name}", flush=True)
        module = importlib.import_module(f"benchmarks.{name}")
        body = module.run()
        stamp = (
            f"_Command: `python -m benchmarks.run {name}` (part of `make bench`); "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.node()}, "
            f"{_cpu()}, Python {platform.python_version()}; took {time.monotonic() - began:.0f} s._"
        )
        # Read again just before writing: another run may have written its section meanwhile.
        sections = _existing_sections()
        sections[name] = f"{body.rstrip()}\n\n{stamp}\n"
        _write(sections)
        print(body)
    return 0


def _exists(name: str) -> bool:
    return (Path(__file__).parent / f"{name}.py").exists()


def _existing_sections() -> dict[str, str]:
    if not REPORT.exists():
        return {}
    pattern = re.compile(r"<!-- begin (\w+) -->\n(.*?)<!-- end \1 -->", re.S)
    return {match[1]: match[2] for match in pattern.finditer(REPORT.read_text())}


def _write(sections: dict[str, str]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    ordered = [name for name in BENCHMARKS if name in sections] + sorted(
        name for name in sections if name not in BENCHMARKS
    )
    parts = [HEADER] + [
        f"<!-- begin {name} -->\n{sections[name]}<!-- end {name} -->\n" for name in ordered
    ]
    REPORT.write_text("\n".join(parts))


def _cpu() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(line.split(":", 1)[1].strip() for line in lines.splitlines()
                     if line.startswith("Model name"))  # fmt: skip
    except StopIteration:
        model = platform.processor() or "unknown CPU"
    return f"{model} x{len(__import__('os').sched_getaffinity(0))}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
