"""One exception type per family of user-facing failure.

Library code raises these with a message a user understands; the CLI (vidstyle.cli) turns any of them
into one line on stderr and exit status 2. Nothing else catches them.
"""


class VidstyleError(Exception):
    """Base of every error the CLI reports as a one-line message."""


class VideoError(VidstyleError):
    """A video or frame folder cannot be opened, decoded or written."""


class FlowFileError(VidstyleError):
    """A flow file (HDF5 clip file, ground-truth .flo or mask) is missing, foreign, truncated or
    inconsistent."""


class ModelError(VidstyleError):
    """A model name, weight file or network configuration cannot be used."""


class ConfigError(VidstyleError):
    """Command-line or configuration values that cannot work (bad size, missing style image, ...)."""
