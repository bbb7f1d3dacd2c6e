"""The settings: their table, their parsers, and their validation."""
