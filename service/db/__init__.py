"""Storage: table definitions, URLs, migrations (repositories arrive with the storage work)."""
