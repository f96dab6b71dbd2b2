"""`cai report`: one self-contained HTML page of what a run folder holds, for people to look at.

`write_report(run, output=None, include=(), examples=50)` reads the manifest, the stage outputs,
the eval folders and the trained models' `cai_train.json` (cai.report.sources), computes what the
page shows (cai.report.stats), draws it (cai.report.plots) and renders report.html.j2
(cai.report.page).
"""

from cai.report.page import write_report

__all__ = ["write_report"]
