"""The files users open and edit first: the constitutions and few-shot files (`constitution/`), and
the demo prompts (`prompts/`), at the repository's top level; plus the starter project (`project/`).

A wheel ships the first two inside this package (pyproject maps them to `cai.data.constitution` and
`cai.data.prompts`); in a source checkout they are read where they stand. Either way `cai` finds
them from any folder, and a Ray worker too.
"""

from importlib.resources import files
from pathlib import Path

ROOT = Path(str(files(__name__)))


def _shipped(name: str) -> Path:
    """A data folder as installed from a wheel, else in the checkout beside the package."""
    packaged = ROOT / name
    return packaged if packaged.is_dir() else ROOT.parents[1] / name


CONSTITUTIONS = _shipped("constitution")
PROMPTS = _shipped("prompts")
DEFAULT_CONSTITUTION = CONSTITUTIONS / "default.yaml"
GENERAL_CONSTITUTION = CONSTITUTIONS / "general.yaml"  # one broad principle, to compare
DEMO_PROMPTS = PROMPTS / "red_team_demo.jsonl"
STARTER_PIPELINE = ROOT / "project" / "pipeline.yaml"
