"""Files that ship inside the package: the default constitution, its few-shot examples and the
demo prompts. Read through importlib.resources, so a wheel install or a Ray worker has them and
`cai` works from any folder."""

from importlib.resources import files
from pathlib import Path

ROOT = Path(str(files(__name__)))
DEFAULT_CONSTITUTION = ROOT / "constitution" / "default.yaml"
GENERAL_CONSTITUTION = ROOT / "constitution" / "general.yaml"  # one broad principle, to compare
DEMO_PROMPTS = ROOT / "prompts" / "red_team_demo.jsonl"
