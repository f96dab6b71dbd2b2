"""The one prompt encoder every backend shares: prompts become token ids here, and only here.

It renders chat prompts with the model's template while tokenizing message contents as plain text
(a prompt containing "<|im_end|>" stays text and can never close a turn), finds the single token of
each judge option, and knows the context length. Backends then only turn token ids into answers,
so an in-process engine and a server see exactly the same prompt.
"""

from __future__ import annotations

from cai.core.errors import CaiError
from cai.core.records import Message


class PromptEncoder:
    def __init__(self, tokenizer, context_length: int):
        self.tokenizer = tokenizer
        self.context_length = context_length
        # Plain-text prompts start with BOS where the tokenizer would add one.
        bos = tokenizer.bos_token_id
        self._bos = [bos] if bos is not None and tokenizer("a").input_ids[:1] == [bos] else []

    def _ids(self, text: str, plain: bool) -> list[int]:
        """Token ids of text; `plain` reads special-token strings (e.g. "<|im_end|>") as text."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=plain).input_ids

    def token_ids(self, prompt: list[Message] | str) -> list[int]:
        """Token ids of a prompt. Chat prompts that end with an assistant message continue it
        (the judge's answer prefix); others get the template's generation prompt."""
        if isinstance(prompt, str):
            return self._bos + self._ids(prompt, plain=True)
        marks = [f"\x00cai{i}\x00" for i in range(len(prompt))]
        messages = [{"role": m.role, "content": mark} for m, mark in zip(prompt, marks)]
        go_on = prompt[-1].role == "assistant"
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=not go_on, continue_final_message=go_on, tokenize=False
        )
        ids = []
        for mark, message in zip(marks, prompt):
            head, text = text.split(mark, 1)
            ids += self._ids(head, plain=False) + self._ids(message.content, plain=True)
        return ids + self._ids(text, plain=False)

    def fits(self, ids: list[int], new_tokens: int) -> bool:
        return len(ids) + new_tokens <= self.context_length

    def option_token_ids(self, prefix: str, options: list[str]) -> list[int]:
        """The single token each option (e.g. "A") is, right after `prefix` (e.g. "answer is: (")."""
        base = self._ids(prefix, plain=True)
        ids = []
        for option in options:
            full = self._ids(prefix + option, plain=True)
            if full[: len(base)] != base or len(full) != len(base) + 1:
                raise CaiError(
                    f"the judge's tokenizer does not read option '{option}' after '{prefix}' as one "
                    "token of its own; this judge model cannot be used"
                )
            ids.append(full[-1])
        return ids
