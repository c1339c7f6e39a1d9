"""The optional C part of lmserver; everything else about the package is in pyproject.toml.

lmserver/media/_sendloop.c is the viewers' send loop in C (see lmserver/media/fastsend.py). It is built
when a C compiler and the Python headers are present (Debian: ``apt-get install gcc python3-dev``);
without them the install goes on and the same loop runs in Python, slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("lmserver.media._sendloop", ["lmserver/media/_sendloop.c"],
                             extra_compile_args=["-O2", "-Wall"], optional=True)])
