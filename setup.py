"""Install the repository's top-level folders under one import namespace, `metacrm`.

The repository keeps the layout the project was asked for (engine/, metamodel/, plugins/,
templates/ at the top), but generic import names like `engine` or `templates` would collide
with other distributions in the same environment. So the wheel (and an editable install)
maps each folder to `metacrm.<folder>`: code imports `metacrm.engine.runtime`, never
`engine.runtime`. The package list is found from the folders, so a new subpackage needs no
edit here; tests/test_packaging.py checks the wheel holds every module.
"""

from setuptools import find_namespace_packages, setup

TOP_LEVEL = ("engine", "metamodel", "plugins", "templates")


def packages() -> list[str]:
    found = []
    for top in TOP_LEVEL:
        found.append(f"metacrm.{top}")
        found += [f"metacrm.{top}.{sub}" for sub in find_namespace_packages(top, exclude=["*__pycache__*"])]
    return found


setup(packages=packages(), package_dir={f"metacrm.{top}": top for top in TOP_LEVEL})
