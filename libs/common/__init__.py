# The release version, reported by /api/public/health; a unit test keeps pyproject.toml in step.
VERSION = "0.1.0"
