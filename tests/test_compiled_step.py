"""The pre-training step under torch.compile: one graph, no breaks, same loss and gradients as eager (CPU)."""
import pytest
import torch

import mask3d
from mask3d.training import Mask3DPretrainer, PretrainMethodConfig


def _model_and_batch():
    torch.manual_seed(0)
    enc = mask3d.create_model('mask3d_vit_tiny_patch16', depth=1)
    model = Mask3DPretrainer(enc, PretrainMethodConfig(depth_encoder_depth=1, decoder_dim=32, decoder_depth=1,
                                                       decoder_num_heads=2))
    model.set_fused_attn(False)  # the engine's CPU attention path
    batch = (torch.randn(2, 3, 32, 48), torch.rand(2, 1, 32, 48) * 4 + 0.3, torch.rand(2, 2, 6))
    return model, batch


def _loss_and_grads(step, model, rgb, depth, noise):
    model.zero_grad(set_to_none=True)
    loss = step(rgb, depth, mask_noise=noise)['loss']
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_step_matches(backend):
    model, (rgb, depth, noise) = _model_and_batch()
    loss, grads = _loss_and_grads(model, model, rgb, depth, noise)
    compiled = torch.compile(model, backend=backend, fullgraph=True, dynamic=False)  # fullgraph: a break is an error
    loss_c, grads_c = _loss_and_grads(compiled, model, rgb, depth, noise)
    assert torch.allclose(loss, loss_c, atol=1e-5, rtol=1e-4)
    assert grads.keys() == grads_c.keys()
    for k in grads:
        assert torch.allclose(grads[k], grads_c[k], atol=1e-5, rtol=1e-3), k


def test_step_is_one_graph_and_matches_eager():
    torch._dynamo.reset()
    model, (rgb, depth, noise) = _model_and_batch()
    explained = torch._dynamo.explain(model)(rgb, depth, mask_noise=noise)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    _assert_step_matches('aot_eager')  # dynamo capture + AOT autograd, without inductor's C++ build


@pytest.mark.slow
def test_inductor_step_matches_eager():
    """Inductor compiles C++ kernels: about a minute on 2 cores."""
    torch._dynamo.reset()
    _assert_step_matches('inductor')
