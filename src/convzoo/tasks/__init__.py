"""Tasks: what is learned (loss, metrics, predictions, pictures). Each module registers its task."""

import importlib
import pkgutil

from convzoo.tasks.base import Task, build_task, list_tasks, register_task, task_class

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["Task", "build_task", "list_tasks", "register_task", "task_class"]
