"""Session backends for agent frameworks, each over the typed client; each module imports its
framework, so import only the one you use (docs/frameworks.md)."""
