"""The packages: toolkit, and the experiments/ folder installed as `toolkit_experiments` (a name of its own, so that a
folder or module called `experiments` of the user's never shadows the shipped ones). Everything else is in
pyproject.toml; setuptools' declarative configuration cannot map one package to a folder of another name beside a
package search."""
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["toolkit", "toolkit.*"]), "toolkit_experiments"],
      package_dir={"toolkit_experiments": "experiments"})
