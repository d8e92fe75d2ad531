"""The rule catalog, shipped in the wheel as ``idemlint.rulefiles`` (one TOML file per rule)."""
