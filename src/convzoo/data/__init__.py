"""Data: bundled real data, standard on-disk formats and simulators. Each module registers its sets."""

import importlib
import pkgutil

from convzoo.data.registry import DataInfo, build_dataset, list_datasets, register_dataset

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "registry":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["DataInfo", "build_dataset", "list_datasets", "register_dataset"]
