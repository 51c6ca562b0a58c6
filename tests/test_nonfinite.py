"""Non-finite values never pass as good: the write-time check every weights writer calls, the loop's guard, and
the advised ``--resume`` after a divergence."""
import math

import pytest
import torch

from mask3d.errors import Mask3DError, NonFiniteTensorError
from mask3d.training.checkpoint import check_finite_tensors


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
