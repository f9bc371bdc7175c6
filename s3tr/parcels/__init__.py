"""parcels stage."""
