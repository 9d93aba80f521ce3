"""What the cascade takes (graph/inputs.py): input with nothing visible, and the size cap."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_intercascade import create_intercascade
from langchain_intercascade.graph import coerce_input

QUESTION = "Sam has 3 boxes with 4 pens in each box."
MEGABYTES = "A" * 2_000_000


@pytest.mark.parametrize(
    "text",
    [
        "\u200b\u200b\u200b",
        "\u2800",
        "\u3164\u3164",
        "\ufeff",
        "\u115f\u1160\uffa0",
        " \u2060\u00a0\u180e",
    ],
    ids=["zero-width-spaces", "braille-blank", "hangul-filler", "bom", "hangul-fillers", "mixed"],
)
def test_text_with_no_visible_character_is_empty_before_any_model_call(weak, strong, bank, text):
    cascade = create_intercascade(weak, strong, bank=bank)
    with pytest.raises(ValueError, match="empty or whitespace"):
        cascade.invoke(text)
    assert weak.calls == [] and strong.calls == []


def test_a_visible_character_among_invisible_ones_is_a_question():
    assert coerce_input("\u200b2 + 2?\u200b")["messages"][0].text == "\u200b2 + 2?\u200b"


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + MEGABYTES}},
        {"type": "image", "base64": MEGABYTES, "mime_type": "image/png"},
        {"type": "file", "url": "https://example.com/" + MEGABYTES},
    ],
    ids=["image-url", "image-data", "file-url"],
)
def test_every_content_block_counts_toward_the_size_cap(weak, strong, bank, block):
    cascade = create_intercascade(weak, strong, bank=bank, max_input_chars=1000)
    message = HumanMessage(content=[{"type": "text", "text": QUESTION}, block])
    with pytest.raises(ValueError, match="over max_input_chars=1000"):
        cascade.invoke([message])
    assert weak.calls == [] and strong.calls == []


def test_tool_call_arguments_in_the_history_count_toward_the_size_cap(weak, strong, bank):
    cascade = create_intercascade(weak, strong, bank=bank, max_input_chars=1000)
    call = {"name": "lookup", "args": {"text": MEGABYTES}, "id": "call_1"}
    history = [HumanMessage("Look it up."), AIMessage(content="", tool_calls=[call])]
    with pytest.raises(ValueError, match="over max_input_chars=1000"):
        cascade.invoke([*history, HumanMessage(QUESTION)])
    assert weak.calls == [] and strong.calls == []
