"""
The version of reconnect: the one place it is written.  C{setup.cfg} reads
it from here for the package's metadata.
"""

__version__ = "0.1.0"
