import pytest

from graphs.router import parse_route, parse_score
from switchboard.llm.tokens import estimate_prompt_tokens, estimate_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"route": "rag"}', "rag"),
        ('{"route": "Direct"}', "direct"),
        ("crew", "crew"),
        (' "direct" ', "direct"),
        ('{"route": "search"}', None),
        ("I think rag", None),
        ("", None),
        ("[1, 2]", None),
        ('{"route": 3}', None),
    ],
)
def test_parse_route(text: str, expected: str | None) -> None:
    assert parse_route(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4}', 4),
        ("5", 5),
        ('{"score": "2"}', 2),
        ('{"score": 9}', None),
        ('{"score": true}', None),
        ("great", None),
    ],
)
def test_parse_score(text: str, expected: int | None) -> None:
    assert parse_score(text) == expected


def test_token_estimates_grow_with_text() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hello, world!") == 4
    assert estimate_tokens("internationalization") > 1
    short = estimate_prompt_tokens([{"role": "user", "content": "hi"}])
    longer = estimate_prompt_tokens([{"role": "user", "content": "hi " * 50}])
    assert 0 < short < longer
