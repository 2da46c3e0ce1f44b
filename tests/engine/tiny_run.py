"""Subprocess entry for the resume test: train a recipe, optionally stopping dead mid-epoch.

    python tiny_run.py RECIPE OUT NAME [--pause EPOCH MARKER]

With ``--pause``, the run writes MARKER and sleeps at the third step of (0-based) epoch EPOCH, after
the checkpoints of the earlier epochs are on disk, so the test can SIGKILL it mid-epoch.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tinyzoo

from convzoo.engine import train


class Pause:
    def __init__(self, epoch: int, marker: str):
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_batch_end(self, epoch, step):
        if epoch == self.epoch and step == 2:
            self.marker.write_text("paused")
            time.sleep(600)


if __name__ == "__main__":
    recipe, out, name, *rest = sys.argv[1:]
    tinyzoo.register()
    callbacks = [Pause(int(rest[1]), rest[2])] if rest and rest[0] == "--pause" else []
    train(recipe, out_dir=out, run_name=name, progress=False, callbacks=callbacks)
