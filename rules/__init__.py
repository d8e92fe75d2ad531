"""The rule catalog, shipped in the wheel as ``idemlint.catalog`` (one TOML file per rule)."""
