"""Test helpers that ship with the package, for this project and for template authors."""

from __future__ import annotations

from ._serve import serve_in_thread
from .fake_llm import FakeLLM, LLMRequest

__all__ = ["FakeLLM", "LLMRequest", "serve_in_thread"]
