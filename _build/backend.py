"""
The build backend: setuptools', with one change.

An editable install made by setuptools' default import finder keeps the
project root off sys.path, and Twisted's plugin scan looks for
twisted/plugins directories on sys.path only, so the dropin would vanish
from ``twistd --help``.  Editable builds therefore default to setuptools'
"compat" mode, which puts the project root on sys.path with a .pth file.
An explicit ``--config-settings editable_mode=...`` still wins.
"""

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the rest of the PEP 517 hooks)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    settings = dict(config_settings or {})
    settings.setdefault("editable_mode", "compat")
    return _setuptools.build_editable(wheel_directory, settings, metadata_directory)
