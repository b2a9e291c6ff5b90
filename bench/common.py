"""What every benchmark shares: the machine, percentiles, paths, writing results."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
DATA = ROOT / "tests" / "data"
DEV_TSV = DATA / "dev.tsv"  # labelled messages the thresholds were tuned with (figures on it: cross-validated)
LOCKED_TSV = DATA / "locked.tsv"  # the locked test set: written before tuning, never tuned on
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    uname = platform.uname()
    return {
        "processor": platform.processor() or uname.machine,
        "uname": f"{uname.system} {uname.release} {uname.machine}",
        "cpu_count": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_model": _cpu_model(),
        "load_average_at_start": load_average(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def load_average() -> float | None:
    """1-minute load average: other work on the machine disturbs p99 (and wall times)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_header(info: dict[str, object]) -> str:
    model = f" ({info['cpu_model']})" if info.get("cpu_model") else ""
    return (
        f"machine: {info['processor']}{model}, {info['uname']}, {info['cpu_count']} CPU(s), "
        f"Python {info['python']}; load average at start {info['load_average_at_start']}"
    )


def source_state() -> dict[str, object]:
    """Which code was measured: the matcher may change between runs."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot", "knowledge"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return {"commit": "", "bot_or_knowledge_modified": None}
    return {"commit": head, "bot_or_knowledge_modified": bool(dirty)}


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p99 of 165 samples is the second largest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples_ns: list[int]) -> dict[str, float]:
    ms = [s / 1e6 for s in samples_ns]
    return {
        "median_ms": round(statistics.median(ms), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "max_ms": round(max(ms), 4),
        "n": len(ms),
    }


def write_results(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    text = json.dumps(payload, ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    (RESULTS / f"{name}-latest.json").write_text(text + "\n", encoding="utf-8")
    return path


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths, strict=True)))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
