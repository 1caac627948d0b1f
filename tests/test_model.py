"""Model: shapes, causality, AdaLN-zero identity at init, presets (paper parameter counts)."""

import pytest
import torch

from lewm_agent.config import preset, replace
from lewm_agent.model import LeWM
from lewm_agent.planning import cem_plan, latent_goal_cost


def _tiny():
    torch.manual_seed(0)
    return LeWM(preset("tiny").model)


def test_shapes():
    m = _tiny().eval()
    cfg = m.cfg
    px = torch.randint(0, 256, (3, cfg.num_frames, 32, 32, 3), dtype=torch.uint8)
    z = m.encode(px)
    assert z.shape == (3, cfg.num_frames, cfg.latent_dim)
    a = torch.randn(3, cfg.history, cfg.action_block_dim)
    assert m.predict(z[:, :-1], a).shape == (3, cfg.history, cfg.latent_dim)
    out = m.rollout(z[:, :1], None, torch.randn(3, 4, cfg.action_block_dim))
    assert out.shape == (3, 4, cfg.latent_dim)


def test_encoder_resizes_other_image_sizes():
    m = _tiny().eval()
    assert m.encode(torch.randint(0, 256, (2, 48, 48, 3), dtype=torch.uint8)).shape == (2, m.cfg.latent_dim)


def test_predictor_is_causal():
    m = LeWM(replace(preset("tiny").model, history=4)).eval()
    for block in m.predictor.blocks:  # make the AdaLN-zero branches live so attention matters
        torch.nn.init.normal_(block.ada[1].weight, std=0.5)
    z = torch.randn(2, 4, m.cfg.latent_dim)
    a = torch.randn(2, 4, m.cfg.action_block_dim)
    out = m.predict(z, a)
    z2, a2 = z.clone(), a.clone()
    z2[:, 3] += 5.0
    a2[:, 3] -= 5.0
    out2 = m.predict(z2, a2)
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-5)  # the past does not see the future
    assert not torch.allclose(out[:, 3], out2[:, 3])


def test_adaln_zero_blocks_start_as_identity():
    m = _tiny()
    x, c = torch.randn(2, 2, m.cfg.pred_width), torch.randn(2, 2, m.cfg.pred_width)
    for block in m.predictor.blocks:
        assert torch.equal(block(x, c), x)


def test_actions_condition_the_prediction_after_training_starts():
    m = _tiny().eval()
    for block in m.predictor.blocks:
        torch.nn.init.normal_(block.ada[1].weight, std=0.5)
    z = torch.randn(2, 1, m.cfg.latent_dim)
    a = torch.randn(2, 1, m.cfg.action_block_dim)
    assert not torch.allclose(m.predict(z, a), m.predict(z, -a))


def test_rollout_uses_context_actions_with_history():
    torch.manual_seed(0)
    m = LeWM(replace(preset("tiny").model, history=3)).eval()
    for block in m.predictor.blocks:  # make the AdaLN-zero branches live so the actions matter
        torch.nn.init.normal_(block.ada[1].weight, std=0.5)
    D, Ad = m.cfg.latent_dim, m.cfg.action_block_dim
    z_ctx, a_ctx, a_plan = torch.randn(2, 2, D), torch.randn(2, 1, Ad), torch.randn(2, 3, Ad)
    out = m.rollout(z_ctx, a_ctx, a_plan)
    # the first step predicts from the window (z0, z1) with the actions (a_ctx, a_plan[0]): predict()'s numbers
    expected = m.predict(z_ctx, torch.cat([a_ctx, a_plan[:, :1]], dim=1))[:, -1]
    assert torch.allclose(out[:, 0], expected, atol=1e-5)
    # and another context action changes every predicted step
    other = m.rollout(z_ctx, a_ctx + 3.0, a_plan)
    assert all(not torch.allclose(out[:, h], other[:, h]) for h in range(3))
    with pytest.raises(ValueError, match="context action blocks"):
        m.rollout(z_ctx, None, a_plan)


def test_loss_terms_and_gradients():
    m = _tiny()
    cfg = m.cfg
    px = torch.randint(0, 256, (8, cfg.num_frames, 32, 32, 3), dtype=torch.uint8)
    out = m.loss(px, torch.randn(8, cfg.history, cfg.action_block_dim))
    assert torch.allclose(out["loss"], out["pred_loss"] + cfg.sigreg_lambda * out["sigreg_loss"])
    out["loss"].backward()
    assert m.encoder.patch_embed.weight.grad.abs().sum() > 0  # no stop-gradient: the encoder learns


def test_rollout_loss_scores_the_predictors_own_rollout_against_the_encoder():
    torch.manual_seed(0)
    base = preset("tiny").model  # history 2, no dropout: train-mode outputs are deterministic
    m = LeWM(replace(base, rollout_loss_steps=3, rollout_loss_weight=0.5))
    for block in m.predictor.blocks:  # live AdaLN branches, so feeding back predictions differs from teacher forcing
        torch.nn.init.normal_(block.ada[1].weight, std=0.5)
    h = base.history
    assert m.cfg.num_frames == h + 1 + 3
    px = torch.randint(0, 256, (8, m.cfg.num_frames, 32, 32, 3), dtype=torch.uint8)
    a = torch.randn(8, m.cfg.num_frames - 1, base.action_block_dim)
    out = m.loss(px, a)
    with torch.no_grad():
        z = m.encode(px)
        one = torch.nn.functional.mse_loss(m.predict(z[:, :h], a[:, :h]), z[:, 1:h + 1])
        roll = torch.nn.functional.mse_loss(m.rollout(z[:, :h], a[:, :h - 1], a[:, h - 1:])[:, 1:], z[:, h + 1:])
        teacher = torch.nn.functional.mse_loss(m.predict(z[:, 2:2 + h], a[:, 2:2 + h])[:, -1], z[:, -1])
    torch.testing.assert_close(out["one_step_loss"], one)
    torch.testing.assert_close(out["rollout_loss"], roll)
    assert not torch.isclose(roll, teacher)  # the last step saw predicted latents, not the encoder's
    torch.testing.assert_close(out["pred_loss"], (one + 0.5 * roll) / 1.5)
    out["loss"].backward()
    assert m.predictor.input.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="rollout_loss_steps"):
        m.loss(px[:, : h + 1], a[:, :h])
    with pytest.raises(ValueError, match="rollout_loss_steps"):
        replace(base, rollout_loss_steps=-1)


def test_bad_config_is_rejected_with_the_field_name():
    with pytest.raises(ValueError, match="patch_size"):
        replace(preset("tiny").model, image_size=30).validate()


def test_paper_preset_parameter_counts_train_step_and_plan():
    torch.manual_seed(0)
    p = preset("paper")
    m = LeWM(p.model)
    counts = m.num_params()
    assert abs(counts["encoder"] / 5.5e6 - 1) < 0.10, counts  # ViT-tiny ~5.5M
    assert abs(counts["predictor"] / 10.8e6 - 1) < 0.10, counts  # predictor ~10.8M
    assert 15e6 <= counts["total"] <= 18.5e6, counts
    # one training step at 224x224
    opt = torch.optim.AdamW(m.parameters(), lr=5e-5)
    px = torch.randint(0, 256, (2, p.model.num_frames, 224, 224, 3), dtype=torch.uint8)
    a = torch.randn(2, p.model.history, p.model.action_block_dim)
    out = m.loss(px, a)
    out["loss"].backward()
    opt.step()
    assert torch.isfinite(out["loss"])
    # one plan with the paper's sample count and horizon (fewer iterations to keep the test fast)
    m.eval()
    with torch.inference_mode():
        z = m.encode(px[:1])  # (1, T, D)
        z_goal = z[:, -1]
        ctx, a_ctx = z[:, :p.model.history], a[:1, : p.model.history - 1]

        def cost(actions):  # S varies: the planner also scores its final mean alone (S=1)
            S = actions.shape[1]
            flat = actions.reshape(S, p.plan.horizon, -1)
            pred = m.rollout(ctx.expand(S, -1, -1), a_ctx.expand(S, -1, -1), flat)
            return latent_goal_cost(pred, z_goal).view(1, S)

        result = cem_plan(cost, torch.zeros(1, p.plan.horizon, p.model.action_block_dim),
                          replace(p.plan, iterations=2), generator=torch.Generator().manual_seed(0))
    assert result.actions.shape == (1, p.plan.horizon, p.model.action_block_dim)
    # the plan is the search's: two iterations of the paper's 300 samples, a finite cost that is the
    # cost of exactly the returned actions, and actions moved away from the zero initial mean
    assert result.iterations == 2 and result.diagnostics["samples"] == [float(p.plan.samples)] * 2
    assert torch.isfinite(result.actions).all() and torch.isfinite(result.cost).all()
    with torch.inference_mode():
        assert torch.allclose(cost(result.actions.unsqueeze(1))[:, 0], result.cost, rtol=1e-4, atol=1e-6)
    assert result.actions.abs().max() > 0.01


@pytest.mark.parametrize("context", [1, 2, 3, 5])
def test_fast_rollout_equals_the_window_by_window_predictor(context):
    """rollout_samples (shared context, cached modulations and keys) gives predict()'s numbers."""
    from lewm_agent.config import ModelConfig

    cfg = ModelConfig(image_size=16, patch_size=8, enc_width=16, enc_depth=1, enc_heads=2, enc_mlp_dim=32,
                      latent_dim=8, projector_hidden=16, pred_width=16, pred_depth=2, pred_heads=2,
                      pred_head_dim=8, pred_mlp_dim=32, history=3, frameskip=2, action_dim=2)
    torch.manual_seed(0)
    model = LeWM(cfg).eval()
    for block in model.predictor.blocks:  # AdaLN-zero starts at zero; make the actions matter
        torch.nn.init.normal_(block.ada[1].weight, std=0.3)
    E, S, H, D, Ad = 2, 4, 5, cfg.latent_dim, cfg.action_block_dim
    z = torch.randn(E, context, D)
    a = torch.randn(E, context - 1, Ad) if context > 1 else None
    plan = torch.randn(E, S, H, Ad)
    with torch.no_grad():
        fast = model.rollout_samples(z, a, plan)  # (E, S, H, D)
        for e in range(E):
            for s in range(S):
                zs, acts = list(z[e]), (list(a[e]) if a is not None else [])
                for h in range(H):
                    acts.append(plan[e, s, h])
                    w = min(len(zs), cfg.history)
                    z_next = model.predict(torch.stack(zs[-w:])[None], torch.stack(acts[-w:])[None])[0, -1]
                    torch.testing.assert_close(fast[e, s, h], z_next, atol=1e-5, rtol=1e-4)
                    zs.append(z_next)
        torch.testing.assert_close(model.rollout(z, a, plan[:, 0]), fast[:, 0])


def test_sincos_positions_are_fixed_distinct_and_not_saved():
    from lewm_agent.config import preset, replace
    from lewm_agent.model import LeWM
    from lewm_agent.model.encoder import sincos_2d

    pe = sincos_2d(4, 32)[0]  # (17, 32)
    assert pe.shape == (17, 32) and torch.all(pe[0] == 0)
    d = torch.cdist(pe[1:], pe[1:])
    assert d[~torch.eye(16, dtype=bool)].min() > 0.1  # every patch has its own position code
    cfg = replace(preset("tiny").model, enc_pos_embed="sincos").validate()
    model = LeWM(cfg)
    assert "encoder.pos_embed" not in model.state_dict()
    assert not any(n == "encoder.pos_embed" for n, _ in model.named_parameters())
    with pytest.raises(ValueError, match="enc_pos_embed"):
        replace(preset("tiny").model, enc_pos_embed="rope").validate()


def test_flatten_readout_tells_apart_an_object_in_two_patches():
    """With the CLS readout and tiny learned positions, a dot in two patches at the same offset gives
    nearly the same latent; the flatten readout sees the slot, so the latents differ at init."""
    from lewm_agent.config import preset, replace
    from lewm_agent.model import LeWM

    img = torch.full((2, 32, 32, 3), 200, dtype=torch.uint8)
    img[0, 2:5, 2:5] = torch.tensor([220, 40, 40], dtype=torch.uint8)  # patch (0, 0), offset 2
    img[1, 2:5, 18:21] = torch.tensor([220, 40, 40], dtype=torch.uint8)  # patch (0, 2), same offset
    gaps = {}
    for readout in ("cls", "flatten"):
        torch.manual_seed(0)
        model = LeWM(replace(preset("tiny").model, enc_readout=readout).validate()).eval()
        with torch.no_grad():
            z = model.encode(img)
        gaps[readout] = float((z[0] - z[1]).norm() / z.norm(dim=1).mean())
    assert gaps["flatten"] > 5 * gaps["cls"]
    with pytest.raises(ValueError, match="enc_readout"):
        replace(preset("tiny").model, enc_readout="mean").validate()
