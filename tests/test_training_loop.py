"""The shared training loop (mask3d/training/loop.py) on a tiny linear model: accumulation, no_sync, whole-step
epochs, the non-finite guard, checkpoints and logging; the task engines are tested end to end elsewhere."""
import contextlib

import pytest
import torch
from timm.scheduler import CosineLRScheduler

from mask3d.errors import NonFiniteLossError
from mask3d.training.runtime.distributed import DistInfo
from mask3d.training.runtime.loop import LoopSettings, TrainingLoop
from mask3d.training.runtime.metrics_log import MetricsLogger, read_metrics


def _setup(steps=4, accum=1, lr=0.1, **settings):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = CosineLRScheduler(opt, t_initial=steps, t_in_epochs=False)
    return model, opt, sched, LoopSettings(steps=steps, accum_steps=accum, progress=False, **settings)


def _batches(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n * size, 3, generator=g)
    return [{'rgb': x[i * size:(i + 1) * size], 'y': x[i * size:(i + 1) * size].sum(1, keepdim=True)}
            for i in range(n)]


def _forward(net, batch, autocast):
    with autocast:
        return {'loss': torch.nn.functional.mse_loss(net(batch['rgb']), batch['y'])}


def test_accumulation_equals_the_large_batch():
    """2 micro-batches of 4 accumulated == 1 batch of 8 (mean losses), step for step."""
    small, big = _batches(8, 4), _batches(4, 8)
    results = []
    for batches, accum in ((small, 2), (big, 1)):
        model, opt, sched, s = _setup(steps=4, accum=accum)
        TrainingLoop(s, model=model, optimizer=opt, scheduler=sched, info=DistInfo()).run(
            lambda epoch, start: batches[start:], _forward)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


class _CountingWrapper(torch.nn.Module):
    """Stands in for DDP: records which micro-steps run under no_sync."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, []

    def forward(self, x):
        return self.module(x)

    @contextlib.contextmanager
    def no_sync(self):
        self.calls.append('no_sync')
        yield


def test_no_sync_on_every_micro_step_but_the_last_and_epochs_are_whole_steps(monkeypatch):
    model, opt, sched, s = _setup(steps=3, accum=3)
    wrapper = _CountingWrapper(model)
    seen = []

    def epoch_batches(epoch, start):
        seen.append((epoch, start))
        return _batches(4, 2, seed=epoch)  # 4 micro-batches: one whole step of 3, one left over

    loop = TrainingLoop(s, model=model, train_model=wrapper, optimizer=opt, scheduler=sched,
                        info=DistInfo(world_size=2), steps_per_epoch=1)
    monkeypatch.setattr('mask3d.training.runtime.loop.all_reduce_mean', lambda t, info: t)  # no process group here
    loop.run(epoch_batches, _forward)
    assert wrapper.calls == ['no_sync'] * 6 and loop.step == 3  # 2 of 3 micro-steps per step, 3 steps
    assert seen == [(0, 0), (1, 0), (2, 0)]  # the 4th micro-batch never starts a step across epochs


def test_non_finite_loss_stops_before_the_checkpoint(tmp_path):
    model, opt, sched, s = _setup(steps=6, log_every=5, ckpt_every=3)
    saved = []
    loop = TrainingLoop(s, model=model, optimizer=opt, scheduler=sched, info=DistInfo(), run_dir=tmp_path,
                        checkpoint_payload=lambda step: saved.append(step) or {'model': model.state_dict()})
    batches = _batches(6, 2)
    batches[1]['y'] = batches[1]['y'] * float('nan')  # step 2 diverges; step 3 would checkpoint
    with pytest.raises(NonFiniteLossError, match=r'non-finite loss or gradient at step 2 .*no checkpoint was written'):
        loop.run(lambda epoch, start: batches[start:], _forward)
    assert saved == [] and not (tmp_path / 'checkpoints' / 'last.pt').exists()


def test_logging_records_and_checkpoints(tmp_path):
    model, opt, sched, s = _setup(steps=4, log_every=2, ckpt_every=2)
    logger = MetricsLogger(tmp_path, True, 'test')
    loop = TrainingLoop(s, model=model, optimizer=opt, scheduler=sched, info=DistInfo(), run_dir=tmp_path,
                        logger=logger, log_tags={'split': 'train'},
                        checkpoint_payload=lambda step: {'model': model.state_dict()})
    batches = _batches(4, 2)
    last = loop.run(lambda epoch, start: batches[start:], _forward, record_extras=lambda: {'extra': 7})
    logger.close()
    records = read_metrics(tmp_path)
    assert [r['step'] for r in records] == [1, 2, 4] and records[-1] == last
    assert all({'loss', 'lr', 'img_s', 'epoch'} <= set(r) and r['split'] == 'train' and r['extra'] == 7
               for r in records)
    assert (tmp_path / 'checkpoints' / 'last.pt').is_file()
    state = torch.load(tmp_path / 'checkpoints' / 'last.pt', weights_only=True)
    assert state['step'] == 4 and torch.equal(state['model']['weight'], model.weight.detach())


def _interrupting_forward(at_call: int, error: BaseException):
    calls = []

    def forward(net, batch, autocast):
        calls.append(1)
        if len(calls) == at_call:
            raise error
        return _forward(net, batch, autocast)
    return forward


@pytest.mark.parametrize('error', [KeyboardInterrupt(), OSError('a frame could not be read')],
                         ids=['interrupt', 'error'])
def test_a_stop_after_a_checkpoint_step_still_writes_that_checkpoint(tmp_path, error):
    """A checkpoint waits for the next step's loss; a run stopped before then (not by divergence) keeps it."""
    model, opt, sched, s = _setup(steps=6, log_every=1, ckpt_every=2)
    loop = TrainingLoop(s, model=model, optimizer=opt, scheduler=sched, info=DistInfo(), run_dir=tmp_path,
                        checkpoint_payload=lambda step: {'model': model.state_dict()})
    batches = _batches(6, 2)
    with pytest.raises(type(error)):
        loop.run(lambda epoch, start: batches[start:], _interrupting_forward(3, error))
    assert torch.load(tmp_path / 'checkpoints' / 'last.pt', weights_only=True)['step'] == 2


def test_a_checkpoint_whose_next_loss_is_nan_is_never_written(tmp_path):
    model, opt, sched, s = _setup(steps=6, log_every=5, ckpt_every=2)
    loop = TrainingLoop(s, model=model, optimizer=opt, scheduler=sched, info=DistInfo(), run_dir=tmp_path,
                        checkpoint_payload=lambda step: {'model': model.state_dict()})
    batches = _batches(6, 2)
    batches[2]['y'] = batches[2]['y'] * float('nan')  # step 3: the loss of step 2's weights
    with pytest.raises(NonFiniteLossError, match=r'^non-finite loss at step 3 .*no checkpoint was written: lower'):
        loop.run(lambda epoch, start: batches[start:], _forward)
    assert not (tmp_path / 'checkpoints' / 'last.pt').exists()
