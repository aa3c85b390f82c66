"""All SQL lives in this package; services call these functions with their session."""
