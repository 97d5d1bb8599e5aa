"""The DIFF protocol (shared/reference/diff.md): merge patches, sessions and messages."""
