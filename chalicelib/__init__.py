"""The sessions service: models, rules and storage, with no dependency on HTTP."""
