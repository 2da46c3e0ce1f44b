"""Methods: what is trained and how one step learns (see :mod:`convzoo.methods.base`).

Each module registers its methods; ``build_method(name, model, task, info, **kwargs)`` builds one.
"""

import importlib
import pkgutil

from convzoo.methods.base import Method, build_method, list_methods, register_method

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Method", "build_method", "list_methods", "register_method"]
