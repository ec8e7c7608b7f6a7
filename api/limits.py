"""The input limits every endpoint applies, in one place, so that one limit is refused the same
way wherever it is met. Each refusal names the limit and the setting that changes it.

The rule for the status: a request that *carries* too much is refused with 413 (its body, its
messages, a message's length, its files, a file's or a text document's size, its metadata); a
request that *asks for* too much is refused with 422 (a graph look-up's depth or result count,
a LangGraph run's `max_tokens`), except on the OpenAI endpoints, whose invalid fields are 400s
as OpenAI's own are.

| setting (`SWITCHBOARD_...`)                 | where                                   | over it |
| ------------------------------------------- | --------------------------------------- | ------- |
| `LIMITS__MAX_BODY_BYTES`                    | every body but `/documents` uploads     | 413     |
| `LIMITS__MAX_MESSAGES`                      | chat turns (`/v1`), runs' input         | 413     |
| `LIMITS__MAX_MESSAGE_CHARS`                 | chat turns (`/v1`), runs' input         | 413     |
| `LIMITS__MAX_TOKENS`                        | chat turns (400), runs (422)            | 400/422 |
| `LIMITS__MAX_METADATA_BYTES`                | threads, runs, documents                | 413     |
| `LIMITS__MAX_GRAPH_HOPS`                    | `GET /graph/entities/{id}?hops=`        | 422     |
| `LIMITS__MAX_GRAPH_RESULTS`                 | `GET /graph/entities...?limit=`         | 422     |
| `RETRIEVAL__MAX_UPLOAD_BYTES`               | each file; a text document's body       | 413     |
| `RETRIEVAL__MAX_UPLOAD_FILES`               | files in one upload                     | 413     |
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from switchboard.errors import InvalidRequest, PayloadTooLarge
from switchboard.settings import LimitSettings


class LimitExceeded(InvalidRequest):
    """A request asked for more than a limit allows (a depth, a number of results)."""

    status = 422
    code = "limit_exceeded"


def setting(group: str, name: str) -> str:
    """The environment variable of a setting, as the refusals name it."""
    return f"SWITCHBOARD_{group}__{name}".upper()


def check_messages(texts: Sequence[str], limits: LimitSettings, param: str = "messages") -> None:
    """Raise `PayloadTooLarge` when there are more than `max_messages` messages or one of them
    is longer than `max_message_chars`; `param` is where the messages are in the body."""
    if len(texts) > limits.max_messages:
        raise PayloadTooLarge(
            f"{len(texts)} messages; at most {limits.max_messages} are accepted "
            f"({setting('limits', 'max_messages')})",
            param=param,
        )
    for index, text in enumerate(texts):
        if len(text) > limits.max_message_chars:
            raise PayloadTooLarge(
                f"message {index} has {len(text)} characters; at most "
                f"{limits.max_message_chars} are accepted "
                f"({setting('limits', 'max_message_chars')})",
                param=f"{param}.{index}.content",
            )


def check_max_tokens(
    max_tokens: int | None, limits: LimitSettings, error: type[InvalidRequest] = InvalidRequest
) -> None:
    """Raise `error` (400 by default; `LimitExceeded` for 422) when `max_tokens` is over the
    limit."""
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise error(
            f"max_tokens is {max_tokens}; at most {limits.max_tokens} "
            f"({setting('limits', 'max_tokens')})",
            param="max_tokens",
        )


def check_metadata(
    metadata: Mapping[str, object] | None, limits: LimitSettings, param: str = "metadata"
) -> None:
    """Raise `PayloadTooLarge` when `metadata`, encoded as compact JSON, is over
    `max_metadata_bytes`."""
    if not metadata:
        return
    size = len(json.dumps(metadata, separators=(",", ":"), default=str).encode())
    if size > limits.max_metadata_bytes:
        raise PayloadTooLarge(
            f"{param} is {size} bytes as JSON; at most {limits.max_metadata_bytes} are accepted "
            f"({setting('limits', 'max_metadata_bytes')})",
            param=param,
        )


def check_at_most(value: int, limit: int, param: str, name: str) -> None:
    """Raise `LimitExceeded` when a requested `param` (a depth, a count) is over `limit`, the
    value of the setting `LIMITS__<name>`."""
    if value > limit:
        raise LimitExceeded(
            f"{param} is {value}; at most {limit} ({setting('limits', name)})", param=param
        )
