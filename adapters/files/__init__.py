"""The file-exchange warehouse adapter (entry point `files` in the `connector.warehouses` group)."""

from adapters.files.adapter import FilesAdapter
from adapters.files.config import FilesConfig

__all__ = ["FilesAdapter", "FilesConfig"]
