"""markers stage."""
