"""Request bodies of the LangGraph Server API (the subset `langgraph-sdk` sends), validated here
so that a bad field is a 422 naming it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from graphs.router import Route

StreamMode = Literal["values", "updates", "messages-tuple", "custom"]
STREAM_MODES: tuple[str, ...] = ("values", "updates", "messages-tuple", "custom")


_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class RunMessage(BaseModel):
    """A message in LangChain's form (`type`: human, ai, system) or OpenAI's (`role`)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"] | None = None
    type: Literal["human", "ai", "system"] | None = None
    content: str

    @model_validator(mode="after")
    def _has_a_role(self) -> RunMessage:
        if self.role is None and self.type is None:
            raise ValueError("a message needs a `role` or a `type`")
        return self

    def to_backend(self) -> dict[str, Any]:
        role = self.role or _ROLES[self.type or ""]
        return {"role": "system" if role == "developer" else role, "content": self.content}


class RunInput(BaseModel):
    """A run's input: the turn's new messages (appended to the thread's)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[RunMessage] = Field(min_length=1)


class RunOptions(BaseModel):
    """What a run may choose, as `context` or as `config.configurable`."""

    model_config = ConfigDict(extra="ignore")

    route: Route | None = Field(default=None, description="Skip classification; take this route.")
    quality_check: bool | None = Field(default=None, description="Override the judge on/off.")
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@:+-]{1,128}$")
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    configurable: dict[str, Any] = Field(default_factory=dict)


def _values_only() -> list[StreamMode]:
    return ["values"]


class RunCreate(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "assistant_id": "switchboard",
                    "input": {
                        "messages": [{"role": "user", "content": "What does a with statement do?"}]
                    },
                }
            ]
        },
    )

    assistant_id: str
    input: RunInput | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: list[StreamMode] = Field(default_factory=_values_only)
    multitask_strategy: Literal["reject", "enqueue", "interrupt", "rollback"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    webhook: HttpUrl | None = None

    @field_validator("stream_mode", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def options(self) -> RunOptions:
        chosen = {**(self.config.configurable if self.config else {}), **(self.context or {})}
        return RunOptions.model_validate(chosen)


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    thread_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
