"""s3tr: an open implementation of France's 3STR CAP area-monitoring service.

Sub-packages follow the data flow: ``parcels`` -> ``imagery`` -> ``extract`` -> ``markers`` ->
``decide`` -> ``review`` -> ``api``; ``nightly`` ties them together and ``demo`` makes a
realistic season to run them on.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
