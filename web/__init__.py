"""The core's templates (``templates/``, help pages included) and static files (``static/``).

Installed as the package ``lmserver.web`` (see ``[tool.setuptools.package-dir]`` in pyproject.toml) so the
server finds them through ``importlib.resources`` in a wheel as in a checkout; nothing to import here.
"""
