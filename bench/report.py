"""What every benchmark does with its figures: print them, keep them as JSON under
bench/results/, and rewrite its own marked section of docs/performance.md."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"


def log(message: str) -> None:
    print(message, flush=True)


def update_doc(block: str, begin: str, end: str, heading: str = "", intro: str = "# Performance\n") -> None:
    """Replace the text between the markers (or append heading and markers when absent)."""
    text = DOC.read_text() if DOC.exists() else intro
    section = f"{begin}\n{block}\n{end}"
    if begin in text and end in text and text.index(begin) < text.index(end):
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + heading + section + "\n"
    DOC.write_text(text)


def publish(report: dict[str, Any], block: str, results: Path, what: str) -> None:
    """Write the JSON and print the Markdown block and each target's verdict (the caller has
    already put the block into the doc)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    log("\n" + block + "\n")
    for target in report["targets"]:
        log(f"{target['status']}: {target['target']} ({target['detail']})")
    log(
        f"\nwrote {results.relative_to(ROOT)} and the {what} of {DOC.relative_to(ROOT)}; "
        f"{report['total_seconds']:.0f} s in all"
    )


def new_report(**fields: Any) -> dict[str, Any]:
    """A report's opening: when and on what it ran, then `fields`."""
    return {
        "generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        **fields,
    }


def at_most(name: str, value: float, limit: float, detail: str) -> dict[str, str]:
    """A target met when `value` is at most `limit`."""
    return {"target": name, "status": "PASS" if value <= limit else "FAIL", "detail": detail}


def figures_section(intro: str, rows: list[str], report: dict[str, Any]) -> str:
    """A benchmark's docs/performance.md section: how it was measured, its table, its verdicts."""
    verdicts = [f"- **{t['status']}** {t['target']}: {t['detail']}" for t in report["targets"]]
    return "\n".join([intro, "", *rows, "", "### Targets", "", *verdicts])


def finish(
    report: dict[str, Any],
    started: float,
    targets: Callable[[dict[str, Any]], list[dict[str, str]]],
    markdown: Callable[[dict[str, Any]], str],
    where: tuple[Path, str, str, str],
    what: str,
) -> int:
    """Judge the targets, rewrite the doc's section (`where`: results file, begin and end markers,
    heading), publish, and answer the exit status: 1 if a target failed."""
    results, begin, end, heading = where
    report["total_seconds"] = time.perf_counter() - started
    report["targets"] = targets(report)
    block = markdown(report)
    update_doc(block, begin, end, heading=heading)
    publish(report, block, results, what)
    return 1 if any(t["status"] == "FAIL" for t in report["targets"]) else 0
