"""photos stage."""
