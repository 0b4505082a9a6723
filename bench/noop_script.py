"""``python bench/noop_script.py``: the no-op trial as a script of its own, for a command
trainable (``bench/spaces/noop_command.yaml``); reports ``score`` 10 times with abl.report."""

from abl import report

for i in range(10):
    report({"score": float(i)}, step=i)
