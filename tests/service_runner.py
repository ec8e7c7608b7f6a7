"""The real app served in a thread for service tests (`api.serving`, shared with `switchboard
eval`)."""

from api.serving import running_service

__all__ = ["running_service"]
