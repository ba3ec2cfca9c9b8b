"""
The twistd dropin: listed by C{twistd --help} after a plain install and after
an editable one (the case that setuptools' default editable finder breaks),
and shipped with no C{__init__.py} that would shadow Twisted.
"""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TWISTD_HELP = (
    "import sys; from twisted.scripts.twistd import run; "
    "sys.argv = ['twistd', '--help']; run()"
)


DROPIN_DIRS = (
    "import os, twisted.plugins\n"
    "for d in twisted.plugins.__path__:\n"
    "    if os.path.exists(os.path.join(d, 'reconnect_saystuff.py')):\n"
    "        print(os.path.realpath(d))\n"
)


def test_noInitFilesInDropin() -> None:
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()


def test_dropinImportsNoReactor() -> None:
    """
    Importing the dropin (as C{twistd --help} does) installs no reactor, so
    C{twistd --reactor=...} still works.
    """
    code = (
        "import sys\n"
        "from twisted.plugin import getPlugins\n"
        "from twisted.application.service import IServiceMaker\n"
        "names = {p.tapname for p in getPlugins(IServiceMaker)}\n"
        "assert {'saystuff', 'saystuff-server'} <= names, names\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def _venvSeeingOurSitePackages(where: Path) -> Path:
    """
    A venv whose interpreter also sees this interpreter's site-packages (for
    Twisted and the build tools), so the install under test needs no
    download but reconnect's own.
    """
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _built(source: Path, where: Path, hook: str) -> Path:
    """
    Build C{source} with the project's own build backend (the stock
    setuptools one) through its PEP 517 C{hook}, into C{where}.
    """
    built = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; "
            f"print(build_meta.{hook}(sys.argv[1]))",
            str(where),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    )
    return where / built.stdout.strip().splitlines()[-1]


def _sdist(source: Path, where: Path) -> Path:
    """
    C{source}'s source distribution, built into C{where}.
    """
    return _built(source, where, "build_sdist")


def _wheel(source: Path, where: Path) -> Path:
    """
    C{source}'s wheel, built into C{where}.
    """
    return _built(source, where, "build_wheel")


def test_stockBuildBackend() -> None:
    """
    The project builds with setuptools' own backend, no in-tree one.
    """
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'build-backend = "setuptools.build_meta"' in pyproject
    assert "backend-path" not in pyproject
    assert not (ROOT / "_build").exists()


@pytest.mark.parametrize("kind", ["plain", "editable", "sdist"])
def test_twistdHelpListsPlugins(tmp_path: Path, kind: str) -> None:
    """
    After each kind of install, C{twistd --help} lists both plugins, found
    in the C{twisted/plugins} of what was just installed (for an editable
    install: of the source tree itself).
    """
    python = _venvSeeingOurSitePackages(tmp_path / "venv")
    source = tmp_path / "source"
    _copyTree(source)
    install = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    install += ["-q", "--no-deps", "--no-build-isolation"]
    if kind == "editable":
        install += ["-e", str(source)]
    elif kind == "sdist":
        install += [str(_sdist(source, tmp_path))]
    else:
        install += [str(source)]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run(install, check=True, env=env)
    helpText = subprocess.run(
        [python, "-c", TWISTD_HELP],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert "saystuff " in helpText or "saystuff\n" in helpText
    assert "saystuff-server" in helpText

    # This interpreter may have reconnect installed too: check that the
    # dropin twistd finds includes the one just installed.
    sitePackages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    expected = source if kind == "editable" else Path(sitePackages)
    found = subprocess.run(
        [python, "-c", DROPIN_DIRS],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    assert str((expected / "twisted" / "plugins").resolve()) in found


def _copyTree(target: Path) -> None:
    """
    Copy the working tree (uncommitted changes included), leaving out build
    and cache litter.
    """
    import shutil

    shutil.copytree(
        ROOT,
        target,
        ignore=shutil.ignore_patterns(
            ".git", ".tox", "*.egg-info", "build", "__pycache__", "dropin.cache"
        ),
    )


def test_sdistCarriesTheDropin(tmp_path: Path) -> None:
    """
    The source distribution holds the dropin, the typing marker, the
    licence and the changelog, and no C{__init__.py} in C{twisted/} or
    C{twisted/plugins/}.
    """
    import tarfile

    source = tmp_path / "source"
    _copyTree(source)
    with tarfile.open(_sdist(source, tmp_path)) as sdist:
        members = {
            member.split("/", 1)[1] for member in sdist.getnames() if "/" in member
        }
    assert "twisted/plugins/reconnect_saystuff.py" in members
    assert "reconnect/py.typed" in members
    assert "LICENSE" in members
    assert "CHANGELOG.md" in members
    assert "twisted/__init__.py" not in members
    assert "twisted/plugins/__init__.py" not in members


def test_wheelCarriesLicenseDropinAndVersion(tmp_path: Path) -> None:
    """
    The wheel holds the licence, the dropin and the typing marker; its
    metadata's version is C{reconnect.__version__}; and once it is
    installed, C{reconnect.__version__} is the installed metadata's version.
    """
    import zipfile

    from reconnect import __version__

    source = tmp_path / "source"
    _copyTree(source)
    wheel = _wheel(source, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        members = set(archive.namelist())
        distInfo = f"reconnect-{__version__}.dist-info"
        metadata = archive.read(f"{distInfo}/METADATA").decode()
    assert f"{distInfo}/licenses/LICENSE" in members
    assert "twisted/plugins/reconnect_saystuff.py" in members
    assert "reconnect/py.typed" in members
    assert f"\nVersion: {__version__}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "\nClassifier: Typing :: Typed\n" in metadata

    python = _venvSeeingOurSitePackages(tmp_path / "venv")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install"]
    install += ["-q", "--no-deps", str(wheel)]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run(install, check=True, env=env)
    versions = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata, reconnect; "
            "print(reconnect.__file__, reconnect.__version__, "
            "importlib.metadata.version('reconnect'))",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.split()
    [where, installed, metadataVersion] = versions
    assert not Path(where).is_relative_to(ROOT)
    assert installed == metadataVersion == __version__


def test_changelogHasTheVersion() -> None:
    """
    The changelog has a section for the version being built.
    """
    from reconnect import __version__

    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"\n## [{__version__}] - " in changelog


def test_oldestConstraintsAreTheFloors() -> None:
    """
    The versions CI's oldest run pins are the floors setup.cfg states, for
    every runtime dependency and the metrics extra.
    """
    import configparser
    import re

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = (
        setup["options"]["install_requires"]
        + setup["options.extras_require"]["metrics"]
    )
    floors = dict(re.findall(r"^\s*([\w.\-]+)\s*>=\s*([\w.]+)", declared, re.MULTILINE))
    pinned = dict(
        re.findall(
            r"^([\w.\-]+)==([\w.]+)$",
            (ROOT / ".ci" / "oldest.txt").read_text(),
            re.MULTILINE,
        )
    )
    assert pinned == floors
