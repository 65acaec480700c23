"""The interpreter the CLI benchmarks run ``unitctl`` with: as ``pip install .`` leaves it.

The development venv (scripts/install-deps.sh) installs unitctl *editable*: its
``__editable__.unitctl-*.pth`` imports a finder at every interpreter start
(pathlib, importlib.util, fnmatch, re), about 16 ms of each process on this
host, that an installed package (README: ``pip install .``) does not pay. The
benchmarks that time whole CLI processes (:mod:`bench.cli`, :mod:`bench.nspawn`,
:mod:`bench.start_trace`) run the CLI, and their ``python -c pass`` floor, with
:func:`installed_python`: a venv of its own, made for the run, whose
site-packages see the development venv's packages through a plain path line
(no ``import`` line, so no finder), with the byte-compiled copy of the package on
``PYTHONPATH`` as before. :func:`dev_python` is the development interpreter,
whose ``python -c pass`` the runs report too, so the difference stays visible.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig


def dev_python() -> str:
    """The development venv's interpreter (the one running the benchmark)."""
    return sys.executable


def installed_python(tmp: str) -> str:
    """A venv under ``tmp`` that sees this interpreter's packages but not the editable
    install's finder; its interpreter's path. Raises if the venv sees the finder."""
    venv = os.path.join(tmp, "venv-installed")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True,
                   capture_output=True, timeout=120)
    python = os.path.join(venv, "bin", "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True, text=True,
                             timeout=60).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    with open(os.path.join(purelib, "unitctl-bench-deps.pth"), "w", encoding="utf-8") as f:
        f.write("".join(f"{path}\n" for path in sorted(ours)))
    probe = ("import sys, click\n"
             "print(any('editable' in m for m in sys.modules))")
    seen = subprocess.run([python, "-c", probe], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()
    if seen != "False":
        raise RuntimeError(f"{python} still loads the editable install's finder")
    return python
