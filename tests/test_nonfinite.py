"""Non-finite values never pass as good: the write-time check every weights writer calls, the loop's guard, and
the advised ``--resume`` after a divergence."""
import math

import pytest
import torch

from mask3d.errors import Mask3DError, NonFiniteTensorError
from mask3d.finite import check_finite_tensors


def test_check_finite_tensors_passes_finite_nests_and_skips_integer_tensors():
    check_finite_tensors({'model': {'w': torch.ones(3)}, 'step': 4, 'rng': [torch.zeros(5, dtype=torch.uint8)],
                          'ints': torch.tensor([2 ** 40])}, 'checkpoint x.pt')
    check_finite_tensors(torch.zeros(2), 'a tensor')
    check_finite_tensors({}, 'nothing')


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_check_finite_tensors_names_where_and_the_first_bad_tensor(bad):
    state = {'model': {'w': torch.ones(3)},
             'optimizer': {'state': {0: {'exp_avg': torch.tensor([1.0, bad])}}}}
    with pytest.raises(NonFiniteTensorError) as err:
        check_finite_tensors(state, 'checkpoint run/checkpoints/last.pt')
    message = str(err.value)
    assert isinstance(err.value, Mask3DError) and '\n' not in message
    assert message.startswith('checkpoint run/checkpoints/last.pt: 1 of 2 tensors hold NaN or inf')
    assert 'optimizer.state.0.exp_avg' in message and 'nothing was written' in message


def test_check_finite_tensors_checks_half_precision_and_lists():
    with pytest.raises(NonFiniteTensorError, match=r'\[1\]'):
        check_finite_tensors([torch.ones(2, dtype=torch.bfloat16), torch.full((2,), math.inf, dtype=torch.float16)],
                             'export')


# ---- a run that diverges, end to end ----

import json  # noqa: E402
import shlex  # noqa: E402

import yaml  # noqa: E402

from mask3d_cli import main  # noqa: E402

TINY = {
    'model': {'name': 'mask3d_vit_tiny_patch16', 'model_args': {'depth': 2}},
    'method': {'depth_encoder_depth': 1, 'decoder_dim': 64, 'decoder_depth': 1, 'decoder_num_heads': 4},
    'data': {'source': 'synthetic', 'image_size': [64, 64], 'batch_size': 2, 'num_workers': 0,
             'synthetic_length': 16},
    'optim': {'lr': 1.0e3, 'warmup_steps': 0, 'min_lr': 0.0},  # AdamW: every weight moves ~1e3 a step
    'train': {'steps': 8, 'precision': 'fp32', 'device': 'cpu', 'log_every': 4, 'ckpt_every': 1,
              'figure_every': 1000, 'figure_samples': 1},
}


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith('mask3d: error: ')]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


@pytest.mark.e2e
def test_a_diverging_run_keeps_the_last_finite_checkpoint_and_the_advised_resume_works(tmp_path, capsys):
    """lr 1e3 with a checkpoint every step: the run stops at the first non-finite loss or gradient, last.pt is the
    last state whose next step was still finite and is named with its step, and the printed command (with a sane lr
    in place of the advised one) finishes the run: finite weights, each step logged once, the export written.

    (With lr 1e4 the first update alone leaves weights of ~1e4 whose gradients overflow two steps later whatever
    the lr: finite but past saving, so no later resume can finish; 1e3 diverges after a few steps instead.)"""
    config = tmp_path / 'diverge.yaml'
    config.write_text(yaml.safe_dump(TINY))
    run = tmp_path / 'run'
    argv = ['pretrain', '--config', str(config), '--output', str(run)]
    assert main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    last = run / 'checkpoints' / 'last.pt'
    state = torch.load(last, map_location='cpu', weights_only=True)
    check_finite_tensors(state, 'last.pt')  # every tensor finite: model, optimizer moments, all of it
    assert f"kept {last} (step {state['step']})" in line and 'stopped before writing a checkpoint' in line
    assert 'non-finite' in line and 'optim.lr (now 1000,' in line
    command = line.split('; command: ', 1)[1]
    assert command == 'mask3d ' + shlex.join(argv + ['--resume', '--set', 'optim.lr=100'])
    assert not (run / 'export').exists() and not (run / '.mask3d-run.lock').exists()

    resume = shlex.split(command)[1:-1] + ['optim.lr=1e-3']  # the advised command, with a lr that is sane here
    assert main(resume) == 0, capsys.readouterr().err[-3000:]
    final = torch.load(last, map_location='cpu', weights_only=True)
    assert final['step'] == TINY['train']['steps'] and final['config']['optim']['lr'] == 1e-3
    check_finite_tensors(final, 'last.pt')
    steps = [json.loads(r)['step'] for r in (run / 'metrics.jsonl').read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == TINY['train']['steps']
    from safetensors.torch import load_file
    check_finite_tensors(load_file(run / 'export' / 'model.safetensors'), 'export')


@pytest.mark.e2e
def test_a_run_that_diverges_before_its_first_checkpoint_says_none_was_written(tmp_path, capsys):
    config = tmp_path / 'diverge.yaml'
    config.write_text(yaml.safe_dump({**TINY, 'train': {**TINY['train'], 'ckpt_every': 100, 'log_every': 1}}))
    argv = ['pretrain', '--config', str(config), '--output', str(tmp_path / 'run')]
    assert main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    assert 'no checkpoint was written (the first is due at step 8)' in line and 'last.pt' not in line
    assert line.endswith(shlex.join(argv + ['--overwrite', '--set', 'optim.lr=100']))
    assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_a_resume_with_a_lower_lr_really_trains_with_it():
    """restore_training_state keeps the schedule of the current config when the lr changed (the saved scheduler
    would bring the old lr back), and the saved one when nothing changed."""
    from timm.scheduler import CosineLRScheduler

    from mask3d.training.runtime.checkpoint import restore_training_state, rng_state
    from mask3d.training.runtime.distributed import DistInfo

    def build(lr):
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.AdamW(model.parameters(), lr=lr)
        sched = CosineLRScheduler(opt, t_initial=10, warmup_t=2, warmup_lr_init=lr * 0.01, warmup_prefix=True,
                                  t_in_epochs=False)
        return model, opt, sched, torch.amp.GradScaler('cuda', enabled=False)

    model, opt, sched, scaler = build(1.0)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    sched.step_update(num_updates=4)
    state = {'model': model.state_dict(), 'optimizer': opt.state_dict(), 'scheduler': sched.state_dict(),
             'scaler': scaler.state_dict(), 'rng': [rng_state()], 'step': 4}
    lr_at_4 = opt.param_groups[0]['lr']

    same = build(1.0)
    assert restore_training_state(state, DistInfo(), *same) == 4
    assert same[1].param_groups[0]['lr'] == pytest.approx(lr_at_4)

    lower = build(0.01)
    restore_training_state(state, DistInfo(), *lower)
    assert lower[1].param_groups[0]['lr'] == pytest.approx(lr_at_4 * 0.01)
    lower[2].step_update(num_updates=5)
    reference = build(0.01)
    reference[2].step_update(num_updates=5)
    assert lower[1].param_groups[0]['lr'] == pytest.approx(reference[1].param_groups[0]['lr'])
    assert torch.equal(lower[1].state_dict()['state'][0]['exp_avg'], opt.state_dict()['state'][0]['exp_avg'])


def test_resume_refuses_a_checkpoint_with_nan_weights_from_an_older_version(tmp_path):
    from mask3d.training.runtime.launch import open_run
    last = tmp_path / 'checkpoints' / 'last.pt'
    last.parent.mkdir(parents=True)
    torch.save({'model': {'w': torch.tensor([math.nan])}, 'config': {}, 'step': 3}, last)
    with pytest.raises(Mask3DError, match=r'holds NaN or inf weights .*start again with --overwrite'):
        open_run(tmp_path, True, {})


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_every_non_finite_value_is_found_wherever_it_sits(dtype, bad):
    from mask3d.finite import all_finite
    for where in (0, 5, 99):
        t = torch.linspace(-3, 3, 100, dtype=dtype)
        t[where] = bad
        assert not all_finite([torch.ones(3), t]) and all_finite([torch.ones(3), torch.zeros(0), t[:0]])
    assert all_finite([torch.full((4,), 6e4, dtype=torch.float16)])  # large but finite: no overflow from a sum
