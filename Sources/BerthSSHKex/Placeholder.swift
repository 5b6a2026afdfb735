// Placeholder until the module's first file lands (docs/ssh-engine.md).
