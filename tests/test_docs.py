"""The user docs: the benchmark page stays short, every repository path a doc names exists, and
no text in the repository describes itself by periods of work instead of code, dates and figures."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
    ROOT / "bench" / "README.md",
    ROOT / "data" / "README.md",
    ROOT / "tests" / "data" / "README.md",
]
# `plugins/x.py`-style paths in backticks; data/ is the user's input folder, not the repository's.
CODE_PATH = re.compile(
    r"`((?:plugins|spark_jobs|dags|bench|tests|scripts|include|docs)/[A-Za-z0-9_./-]+"
    r"\.(?:py|md|sh|json|ndjson|csv|png|yaml|yml))`"
)
LINK = re.compile(r"\]\(([^)#:]+)(?:#[^)]*)?\)")
# Periods of work, not code: "session 7", "sessions 8 and 9", "session-5", "tonight", "this round".
WORK_PERIOD = re.compile(r"\bsessions? ?-?\d|\btonight\b|\bthis round\b|\bearlier session\b", re.IGNORECASE)


def test_the_benchmark_page_is_a_summary():
    assert len((ROOT / "docs" / "benchmarks.md").read_text().splitlines()) < 250


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_link_a_doc_names_exists(doc):
    text = doc.read_text()
    missing = [p for p in CODE_PATH.findall(text) if "<" not in p and "*" not in p and not (ROOT / p).exists()]
    missing += [link for link in LINK.findall(text) if not (doc.parent / link).exists()]
    assert not missing, f"{doc.relative_to(ROOT)} names what does not exist: {missing}"


def test_no_text_names_a_period_of_work():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if path == Path(__file__) or not path.is_file() or path.suffix in (".png", ".gz", ".parquet"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [
            f"{name}:{n}: {line.strip()[:100]}"
            for n, line in enumerate(text.splitlines(), 1)
            if WORK_PERIOD.search(line)
        ]
    assert not found, "describe code, versions, dates and figures instead:\n" + "\n".join(found)
