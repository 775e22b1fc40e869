"""Package discovery that pyproject.toml cannot say: the top-level templates/ folder is
shipped as helexa/templates (pyproject's [tool.setuptools.package-dir] maps it), and
`packages.find` only finds folders named like their package."""

from setuptools import find_namespace_packages, setup

setup(packages=[*find_namespace_packages(include=["helexa*"]), "helexa.templates"])
