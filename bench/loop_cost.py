"""Figure ``loop_cost``: abl's training loop against a bare PyTorch loop on the same steps.

    python -m bench --only loop_cost

For ``att``, ``bigram_att`` and ``looped`` (each skipped with a note while it is not
registered), on the first config of its built-in space cut to 3 epochs (see SOURCES), both
loops start from :func:`abl.trainables.loop.build_run` with the same config and seed, so they
train the same model on the same batches in the same order for the same number of steps:

- abl: :func:`abl.trainables.loop.train` (AdamW, LR schedule, gradient clipping, curriculum
  hooks, per-epoch validation and checkpoint, final metrics); its training throughput is the
  ``perf/samples_per_s`` it reports, timed around the training steps of each epoch;
- bare: the curriculum hooks, forward, loss, ``zero_grad``, ``backward``, ``AdamW.step``
  and nothing else.

The target is on training steps/s (same batches, so samples/s is the same ratio). What abl's
``train`` spends outside the training steps (validation, checkpoints, final metrics) is
reported for information. Both run with 1 torch thread, as a 1-CPU trial does; they
alternate for a few rounds, and each side keeps its fastest epoch: a shared machine only
ever slows a loop down, so the fastest epoch is the closest to what the loop itself costs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench._env import Stopwatch, device, torch_threads
from bench._figure import Figure, at_least

# model -> (built-in space, overrides, steps per epoch): the first config of the space, with
# epochs of at least ~0.25 s, since the first steps after a validation pass run on cold
# caches and would weigh too much in shorter epochs (bigram_att: 200 steps of ~1 ms).
SOURCES: dict[str, tuple[str, tuple[str, ...], int]] = {
    "att": ("att_timeseries", (), 20),
    "bigram_att": ("bigram_pe", ("model.kind=bigram_att",), 200),
    "looped": ("looped_linreg", (), 20),
}
QUICK_STEPS = 10
EPOCHS, QUICK_EPOCHS = 3, 1
ROUNDS, QUICK_ROUNDS = 4, 2


@dataclass
class Timing:
    """One call of a loop: steps/s of each epoch's training steps, and the call's seconds."""

    epoch_rates: list[float]  # training steps per second, epoch by epoch
    train_s: float  # seconds spent in training steps
    total_s: float  # seconds of the whole call (build, validation, checkpoints, final metrics)


@dataclass(frozen=True)
class Epoch:
    """Training steps and samples of one epoch."""

    steps: int
    samples: int


def spec_of(model: str) -> Any:
    """The registered trainable whose ``model.kind`` may be ``model``."""
    from abl.trainables.spec import TRAINABLES

    for name in TRAINABLES.names():
        spec = TRAINABLES.get(name)
        if model in getattr(spec, "models", ()):
            return spec
    raise LookupError(f"no registered trainable has model.kind '{model}'")


def config_of(model: str, *, epochs: int, steps: int) -> dict[str, Any]:
    """The first trial config of ``model``'s built-in space, cut to ``epochs`` x ``steps``."""
    from abl.space import expand, load_space

    name, overrides, _ = SOURCES[model]
    budget = [f"train.epochs={epochs}", f"train.steps_per_epoch={steps}"]
    space = load_space(name, [*overrides, *budget])
    return expand(space, spec_of(model), limit=1)[0]


def bare_loop(config: dict[str, Any], spec: Any) -> Timing:
    """The same run as abl's, trained by the plainest loop: AdamW steps only.

    It calls the curriculum hooks (``set_step``) as abl does: they change the work itself
    (the looped model's loop count, the prompt length of in-context regression).
    """
    from abl.trainables.loop import build_run

    where = device()
    with Stopwatch() as total:
        run = build_run(config, spec, where)
        model, task, opt, cfg = run.model, run.task, run.opt, run.cfg
        model.train()
        rates, train_s, global_step = [], 0.0, 0
        for _ in range(cfg.epochs):
            batches = task.batches("train", cfg.batch_size, generator=run.gen)
            first = global_step
            with Stopwatch() as sw:
                for step, (x, y) in enumerate(batches):
                    if cfg.steps_per_epoch > 0 and step >= cfg.steps_per_epoch:
                        break
                    task.set_step(global_step)
                    model.set_step(global_step)
                    x, y = x.to(where), y.to(where)
                    loss = task.loss(model(x), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    global_step += 1
            rates.append((global_step - first) / sw.seconds)
            train_s += sw.seconds
    return Timing(rates, train_s, total.seconds)


def abl_loop(config: dict[str, Any], spec: Any, epochs: list[Epoch]) -> Timing:
    """abl's ``train``; training seconds recovered from its ``perf/samples_per_s`` reports."""
    from abl.trainables.loop import train

    rates: list[float] = []
    with Stopwatch() as total:
        train(
            config,
            trainable=spec,
            report=lambda m, _ckpt: rates.append(m["perf/samples_per_s"]),
            device=device(),
        )
    seconds = [e.samples / r for e, r in zip(epochs, rates, strict=True)]
    steps_per_s = [e.steps / s for e, s in zip(epochs, seconds, strict=True)]
    return Timing(steps_per_s, sum(seconds), total.seconds)


def epochs_of(config: dict[str, Any], spec: Any) -> list[Epoch]:
    """Steps and samples of every epoch of ``config``: the batches both loops will see."""
    from abl.trainables.loop import build_run

    run = build_run(config, spec)
    cap, out = run.cfg.steps_per_epoch, []
    for _ in range(run.cfg.epochs):
        batches = run.task.batches("train", run.cfg.batch_size, generator=run.gen)
        sizes = [x.shape[0] for i, (x, _y) in enumerate(batches) if cap <= 0 or i < cap]
        out.append(Epoch(len(sizes), sum(sizes)))
    return out


def compare(fig: Figure, model: str, config: dict[str, Any], rounds: int) -> None:
    """Alternate abl and bare ``rounds`` times on ``model``; add its measures to ``fig``."""
    spec = spec_of(model)
    plan = epochs_of(config, spec)
    abl: list[Timing] = []
    bare: list[Timing] = []
    with torch_threads(1):
        bare_loop(config, spec)  # warm-up: first-call allocations and lazy imports
        for i in range(rounds):
            if i % 2 == 0:
                abl.append(abl_loop(config, spec, plan))
            bare.append(bare_loop(config, spec))
            if i % 2 == 1:
                abl.append(abl_loop(config, spec, plan))
    abl_rate = max(r for t in abl for r in t.epoch_rates)
    bare_rate = max(r for t in bare for r in t.epoch_rates)
    outside = statistics.median(1 - t.train_s / t.total_s for t in abl)
    fig.add(f"{model}: abl / bare steps/s", abl_rate / bare_rate, "x", at_least(0.95))
    fig.add(f"{model}: bare loop steps/s (fastest epoch)", bare_rate, "steps/s")
    fig.add(f"{model}: abl loop steps/s (fastest epoch)", abl_rate, "steps/s")
    fig.add(f"{model}: share of abl train() outside training steps", outside, "")


def run(quick: bool) -> Figure:
    """Steps/s of abl's loop over a bare loop, for every model that is registered."""
    epochs, rounds = (QUICK_EPOCHS, QUICK_ROUNDS) if quick else (EPOCHS, ROUNDS)
    fig = Figure(
        "loop_cost", f"abl's training loop vs a bare AdamW loop: {epochs} epoch(s), 1 thread"
    )
    for model, (space, _, steps) in SOURCES.items():
        steps = QUICK_STEPS if quick else steps
        try:
            from abl.trainables.models import MODELS

            MODELS.get(model)
            config = config_of(model, epochs=epochs, steps=steps)
        except Exception as exc:  # not registered yet, or its module does not import
            fig.notes.append(f"{model}: skipped, not available ({type(exc).__name__}: {exc})")
            continue
        compare(fig, model, config, rounds)
        fig.notes.append(
            f"{model}: the first config of spaces/{space}.yaml, {steps} steps an epoch"
        )
    return fig
