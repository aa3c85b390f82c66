"""Business logic. Services take the session explicitly and never commit."""
