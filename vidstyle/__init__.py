"""vidstyle: real-time, temporally consistent neural style transfer for video."""

__version__ = "0.1.0"
