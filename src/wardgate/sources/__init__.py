"""Where resources come from. Each source yields raw objects with their origin."""

from wardgate.sources.files import RawObject, load_paths, load_text, manifest_files

__all__ = ["RawObject", "load_paths", "load_text", "manifest_files"]
