"""The HTTP surface: OpenAI-compatible chat, the native run stream, health."""

from api.app import create_app

__all__ = ["create_app"]
