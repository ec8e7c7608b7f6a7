import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from switchboard.settings import Role, Settings, SettingsError, load_settings


def test_defaults_start_the_bundled_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_LLM__BACKENDS", raising=False)
    settings = load_settings()
    assert settings.llm.backends == []
    assert settings.wants_local_backend


def test_backends_come_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = [
        {"name": "ollama", "base_url": "http://gpu:11434/v1", "model": "llama3.1"},
        {"name": "localai", "base_url": "http://gpu:8080/v1", "models": {"judge": "qwen"}},
    ]
    monkeypatch.setenv("SWITCHBOARD_LLM__BACKENDS", json.dumps(backends))
    monkeypatch.setenv("SWITCHBOARD_LLM__IDLE_TIMEOUT", "2.5")
    settings = load_settings()
    assert [b.name for b in settings.llm.backends] == ["ollama", "localai"]
    assert settings.llm.backends[0].model_for(Role.ROUTER) == "llama3.1"
    assert settings.llm.backends[1].model_for(Role.JUDGE) == "qwen"
    assert settings.llm.backends[1].model_for(Role.GENERATOR) is None
    assert settings.llm.idle_timeout == 2.5
    assert not settings.wants_local_backend


def test_each_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LLM__IDLE_TIMEOUT", "-1")
    monkeypatch.setenv("SWITCHBOARD_SERVER__PORT", "seventy")
    monkeypatch.setenv("SWITCHBOARD_QUALITY__THRESHOLD", "3")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SWITCHBOARD_LLM__IDLE_TIMEOUT: Input should be greater than 0 (got '-1')" in message
    assert "SWITCHBOARD_SERVER__PORT" in message and "'seventy'" in message
    assert "SWITCHBOARD_QUALITY__THRESHOLD" in message


def test_backend_problems_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    backends = [
        {"name": "a", "base_url": "http://x/v1", "model": "m"},
        {"name": "a", "base_url": "not a url", "model": "m"},
        {"name": "b", "base_url": "http://y/v1"},
    ]
    monkeypatch.setenv("SWITCHBOARD_LLM__BACKENDS", json.dumps(backends))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SWITCHBOARD_LLM__BACKENDS (1.base_url)" in message
    assert "backend 'b' names no model" in message


def _as_env(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def test_env_example_documents_every_setting_with_its_default() -> None:
    documented: dict[str, str] = {}
    example = Path(__file__).resolve().parents[2] / ".env.example"
    for line in example.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            documented[name] = value.strip('"')
    defaults = Settings()
    expected: dict[str, str] = {}
    for group in Settings.model_fields:
        model = getattr(defaults, group)
        assert isinstance(model, BaseModel)
        for name in type(model).model_fields:
            key = f"SWITCHBOARD_{group.upper()}__{name.upper()}"
            expected[key] = _as_env(getattr(model, name))
    assert documented == expected
