"""The words that changed between two answers, as HTML: removed words in <del>, added in <ins>.

Texts are compared as tokens: a word or a run of punctuation, with the spaces after it. Every
piece of text is HTML-escaped here; only the <del>/<ins> tags are markup.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from markupsafe import Markup, escape

_TOKEN = re.compile(r"^\s+|(?:\w+|[^\w\s]+)\s*")


def word_diff(before: str, after: str) -> tuple[Markup, int]:
    """`after` with the changes from `before` marked, and how many words were removed or added."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    html, changed = [], 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            html.append(escape("".join(b[j1:j2])))
            continue
        changed += sum(1 for token in a[i1:i2] + b[j1:j2] if re.search(r"\w", token))
        if i2 > i1:
            html.append(Markup("<del>{}</del>").format("".join(a[i1:i2])))
        if j2 > j1:
            html.append(Markup("<ins>{}</ins>").format("".join(b[j1:j2])))
    return Markup("").join(html), changed
