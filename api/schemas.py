"""Request and response bodies of the public API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from graphs.router import Route


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """An OpenAI chat message. Content may be a string or a list of text parts."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def to_backend(self) -> dict[str, Any]:
        """The message as sent to a backend: plain-string content; `developer` is `system` to
        OpenAI-compatible servers that predate it."""
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": self.text()}
        if self.name:
            message["name"] = self.name
        return message


class StreamOptions(BaseModel):
    include_usage: bool = False


class SwitchboardOptions(BaseModel):
    """Switchboard's own request fields (OpenAI clients send them with `extra_body`)."""

    route: Route | None = Field(default=None, description="Skip classification; take this route.")
    quality_check: bool | None = Field(default=None, description="Override the judge on/off.")
    thread_id: str | None = Field(default=None, max_length=128)
    user: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.@:+-]{1,128}$",
        description="Who is talking: long-term memories are kept per user (none: no memory).",
    )


# The documented examples' turn (also what schemathesis sends as valid, `tests/conformance/`).
_EXAMPLE_TURN: dict[str, JsonValue] = {"role": "user", "content": "What does a with statement do?"}


class ChatCompletionRequest(SwitchboardOptions):
    """`POST /v1/chat/completions`. Unknown OpenAI fields (top_p, n, ...) are accepted and
    ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"examples": [{"model": "switchboard", "messages": [_EXAMPLE_TURN]}]},
    )

    model: str
    messages: list[ChatMessageIn]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


class NativeRunRequest(SwitchboardOptions):
    """`POST /v1/chat/stream`: a turn on a workflow, answered with the run's native events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"workflow": "switchboard", "messages": [_EXAMPLE_TURN]}]},
    )

    workflow: str = "switchboard"
    messages: list[ChatMessageIn]
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
