"""minimllm: a multimodal LLM built from scratch, one notebook chapter at a time.

Modules are generated from the chapter notebooks (`make export`); see the README's chapter table.
"""

__version__ = "0.1.1"
