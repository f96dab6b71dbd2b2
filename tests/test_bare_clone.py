"""The suite runs in a clone with nothing beside it: no test may read outside the repository."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_reads_the_shared_folder_beside_the_checkout():
    offenders = [
        p.name for p in TESTS.glob("*.py")
        if p.name != Path(__file__).name and re.search(r"[\"']shared[\"']|\.\./shared", p.read_text())
    ]
    assert offenders == []
