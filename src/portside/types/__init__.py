"""Typed models returned by the SDK."""

from portside.types.common import Health, Model, Page
from portside.types.keys import ApiKey, CreatedApiKey

__all__ = ["ApiKey", "CreatedApiKey", "Health", "Model", "Page"]
