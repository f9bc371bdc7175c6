"""nightly stage."""
