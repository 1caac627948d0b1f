"""Planning-time rollout of the predictor: the same numbers as ``Predictor.forward`` window by window,
for fewer FLOPs.

A planner scores S candidate action sequences per environment. Rolling the predictor out over H
blocks with a sliding window of ``history`` latents repeats a lot of work if done naively:

1. **Shared context.** Token i of the sequence holds (z_i, a_i). The context latents z_0..z_{c-1}
   and the executed blocks a_0..a_{c-2} are the same for every sample of an env, so tokens
   0..c-2 are the same too; inside a window they always come first, and under causal attention
   their hidden states depend only on each other. They are computed once per env (E rows, not
   E*S) and their keys/values are broadcast to the samples' queries.
2. **Nothing computed twice within a plan.** The action embeddings and the AdaLN modulations of
   the H planned blocks are computed once per rollout (each block appears in up to ``history``
   windows); so is the input projection of every latent.
3. **Windows that grow reuse keys and values.** While the window has not reached ``history``
   tokens it does not slide, the positions do not change, and the earlier tokens' keys and values
   at every layer are exactly those of the previous step: only the new token is computed.
   (The learned absolute position embedding is re-indexed when the window slides, so a sliding
   window has no exact cache and is recomputed; the shared tokens still cost E rows.)
4. **Only the token that is read.** Every step reads the prediction of the newest token: in the
   last block the other tokens need only their keys and values, and the final LayerNorm and the
   projector run on one token.
5. **Direct attention.** Windows hold at most ``history`` (3) tokens; the scores are small
   batched products, which on a CPU cost far less than a generic fused-attention call.

Exactness: in eval mode the result equals ``Predictor.forward`` on each window up to float
rounding (tests/test_model.py checks it against the window-by-window reference). Dropout is
inactive (the caller puts the model in eval mode). The module is differentiable, so the
gradient planner can use it too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .predictor import AdaLNBlock, Predictor


class _Tokens:
    """Keys and values of the tokens in the current window, per block.

    ``shared``: per block (k, v) of the env-shared prefix, each (E, h, p, d), or None if p = 0.
    ``own``: per block (k, v) of the per-sample tokens, each (E, h, S, q, d).
    """

    def __init__(self, depth: int):
        self.shared: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * depth
        self.own: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * depth


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(E, S, n, heads*d) -> (E, heads, S, n, d)."""
    E, S, n, _ = t.shape
    return t.view(E, S, n, heads, -1).permute(0, 3, 1, 2, 4)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    prefix: tuple[torch.Tensor, torch.Tensor] | None,
    scale: float,
) -> torch.Tensor:
    """Causal attention of the newest ``nq`` tokens over [shared prefix, own tokens].

    Args:
        q: (E, h, S, nq, d) queries of the last nq own tokens.
        k, v: (E, h, S, n, d) keys/values of all n own tokens of the window (n >= nq).
        prefix: (k, v) of the shared prefix, each (E, h, p, d), or None.

    Returns:
        (E, h, S, nq, d).
    """
    E, h, S, nq, d = q.shape
    n = k.shape[3]
    s_own = torch.matmul(q, k.transpose(-1, -2)) * scale  # (E, h, S, nq, n)
    if nq > 1:  # query i (own index n - nq + i) sees own keys 0 .. n - nq + i
        qi = torch.arange(n - nq, n, device=q.device)[:, None]
        kj = torch.arange(n, device=q.device)[None, :]
        s_own = s_own.masked_fill(kj > qi, float("-inf"))
    if prefix is None:
        return torch.matmul(torch.softmax(s_own, dim=-1), v)
    pk, pv = prefix
    p = pk.shape[2]
    s_pre = torch.matmul(q.reshape(E, h, S * nq, d), pk.transpose(-1, -2)).view(E, h, S, nq, p) * scale
    probs = torch.softmax(torch.cat([s_pre, s_own], dim=-1), dim=-1)  # (E, h, S, nq, p + n)
    out = torch.matmul(probs[..., p:], v)  # (E, h, S, nq, d)
    out_pre = torch.matmul(probs[..., :p].reshape(E, h, S * nq, p), pv).view(E, h, S, nq, d)
    return out + out_pre


def _block_step(
    block: AdaLNBlock,
    x: torch.Tensor,
    mod: torch.Tensor,
    cache: tuple[torch.Tensor, torch.Tensor] | None,
    prefix: tuple[torch.Tensor, torch.Tensor] | None,
    last_only: bool,
    keep_kv: bool = True,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """One AdaLN-zero block on the new tokens of a window.

    Args:
        x: (E, S, m, W) new tokens (after the cached ones in time).
        mod: (E, S, m, 6W) their AdaLN modulation (shift1, scale1, gate1, shift2, scale2, gate2).
        cache: keys/values of earlier own tokens (E, h, S, n0, d) each, or None.
        prefix: keys/values of the shared prefix (E, h, p, d) each, or None.
        last_only: the output is needed only for the newest token (the other new tokens still
            contribute their keys and values).
        keep_kv: the next step reuses this window's keys/values (it grows without sliding).

    Returns:
        x_out (E, S, m or 1, W) and the window's own keys/values (E, h, S, n0 + m, d), or None
        for a lone token whose keys/values nobody reads.
    """
    attn = block.attn
    heads, d = attn.heads, attn.head_dim
    shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
    hidden = _modulate(block.norm1(x), shift1, scale1)  # (E, S, m, W)
    Wq = heads * d
    qkv_w, qkv_b = attn.qkv.weight, attn.qkv.bias
    if cache is None and prefix is None and x.shape[2] == 1:
        # a window of one token (history 1, or the first step): softmax over one key is 1, the output is v
        v = F.linear(hidden, qkv_w[2 * Wq:], qkv_b[2 * Wq:])  # (E, S, 1, Wq)
        x = x + gate1 * attn.proj(v)
        x = x + gate2 * block.mlp(_modulate(block.norm2(x), shift2, scale2))
        if not keep_kv:
            return x, None
        k = F.linear(hidden, qkv_w[Wq:2 * Wq], qkv_b[Wq:2 * Wq])  # the next token attends to it
        return x, (_split_heads(k, heads), _split_heads(v, heads))
    if last_only and x.shape[2] > 1:  # keys/values for all new tokens, the query for the newest only
        kv = F.linear(hidden, qkv_w[Wq:], qkv_b[Wq:])  # (E, S, m, 2Wq)
        q = F.linear(hidden[:, :, -1:], qkv_w[:Wq], qkv_b[:Wq])  # (E, S, 1, Wq)
        k, v = kv.chunk(2, dim=-1)
        x, gate1, shift2, scale2, gate2 = (t[:, :, -1:] for t in (x, gate1, shift2, scale2, gate2))
    else:
        q, k, v = F.linear(hidden, qkv_w, qkv_b).chunk(3, dim=-1)
    q, k, v = _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads)
    if cache is not None:
        k, v = torch.cat([cache[0], k], dim=3), torch.cat([cache[1], v], dim=3)
    y = _attend(q, k, v, prefix, d**-0.5)  # (E, h, S, nq, d)
    E, _, S, nq, _ = y.shape
    y = attn.proj(y.permute(0, 2, 3, 1, 4).reshape(E, S, nq, Wq))  # (E, S, nq, W)
    x = x + gate1 * y
    x = x + gate2 * block.mlp(_modulate(block.norm2(x), shift2, scale2))
    return x, (k, v)


def _run_blocks(
    pred: Predictor,
    x: torch.Tensor,
    mods: list[torch.Tensor],
    tokens: _Tokens,
    shared: bool,
    last_only: bool,
    keep_kv: bool = True,
) -> torch.Tensor:
    """Push new tokens x (E, S, m, W) through every block, appending to the window's keys/values."""
    depth = len(pred.blocks)
    for i, block in enumerate(pred.blocks):
        if shared:  # the shared prefix attends only to itself
            x, kv = _block_step(block, x, mods[i], None, None, False)
            tokens.shared[i] = (kv[0][:, :, 0], kv[1][:, :, 0])
        else:
            x, tokens.own[i] = _block_step(block, x, mods[i], tokens.own[i], tokens.shared[i],
                                           last_only and i == depth - 1, keep_kv)
    return x


_CHUNK_FLOATS = 1 << 22  # 16 MB of fp32 activations per layer: a chunk's working set stays in cache


def rollout_samples(
    pred: Predictor,
    z_context: torch.Tensor,
    a_context: torch.Tensor | None,
    a_plan: torch.Tensor,
) -> torch.Tensor:
    """Predicted latents after each planned block, for S sampled plans per environment.

    Args:
        pred: the predictor (in eval mode).
        z_context: (E, c, D) observed latents, oldest first; the last one is "now".
        a_context: (E, c-1, k*A) executed action blocks between them, or None if c == 1.
        a_plan: (E, S, H, k*A) planned action blocks (normalised units).

    Returns:
        (E, S, H, D): z_hat after each planned block, as ``LeWM.rollout`` would give for each
        sample (sliding window of ``history`` latents).

    Samples are independent, so large batches are cut into chunks of envs (or of one env's
    samples) whose activations stay in cache: on a 2-core CPU, 8 envs x 300 samples of the
    ``paper`` predictor in one piece took 9.6x the time of 1 env.
    """
    E, S = a_plan.shape[:2]
    widest = max(pred.blocks[0].mlp[0].out_features, 3 * pred.blocks[0].attn.heads * pred.blocks[0].attn.head_dim)
    rows = max(1, _CHUNK_FLOATS // (widest * pred.history))  # (env, sample) rows per chunk
    if E * S <= rows or a_plan.device.type != "cpu":  # a GPU wants few, large kernels instead
        return _rollout(pred, z_context, a_context, a_plan)
    if S <= rows:  # whole envs per chunk
        step = max(1, rows // S)
        parts = [_rollout(pred, z_context[i:i + step], None if a_context is None else a_context[i:i + step],
                          a_plan[i:i + step]) for i in range(0, E, step)]
        return torch.cat(parts, dim=0)
    parts = [torch.cat([_rollout(pred, z_context[e:e + 1], None if a_context is None else a_context[e:e + 1],
                                 a_plan[e:e + 1, j:j + rows]) for j in range(0, S, rows)], dim=1) for e in range(E)]
    return torch.cat(parts, dim=0)


def _rollout(
    pred: Predictor,
    z_context: torch.Tensor,
    a_context: torch.Tensor | None,
    a_plan: torch.Tensor,
) -> torch.Tensor:
    """One chunk of :func:`rollout_samples` (same arguments and result)."""
    E, c, _ = z_context.shape
    _, S, H, _ = a_plan.shape
    hist = pred.history
    if a_context is None:
        a_context = a_plan.new_zeros(E, 0, a_plan.shape[-1])
    if a_context.shape[1] != c - 1:
        raise ValueError(f"rollout: {c} context latents need {c - 1} context action blocks, got {a_context.shape[1]}.")
    # keep only the context the window can ever see
    keep = min(c, hist)
    z_context, a_context, c = z_context[:, c - keep:], a_context[:, a_context.shape[1] - (keep - 1):], keep

    # computed once per rollout: input projections and modulations of every token
    ctx_in = pred.input(z_context)  # (E, c, W)
    ctx_mods = None
    if c > 1:
        ctx_emb = pred.action_encoder(a_context)  # (E, c-1, W)
        ctx_mods = [b.ada(ctx_emb) for b in pred.blocks]  # (E, c-1, 6W) each
    plan_emb = pred.action_encoder(a_plan)  # (E, S, H, W)
    plan_mods = [b.ada(plan_emb) for b in pred.blocks]  # (E, S, H, 6W) each
    # token i of the sequence: latent i (context i < c, else prediction i - c) with block i
    # (context i < c - 1, else plan i - c + 1); tokens 0 .. c-2 are shared by every sample.
    own_in: list[torch.Tensor] = [ctx_in[:, c - 1:c].unsqueeze(1).expand(E, S, 1, -1)]  # inputs of tokens >= c-1
    tokens, start = _Tokens(len(pred.blocks)), None
    preds = []
    for h in range(H):
        n = c + h  # tokens in the sequence so far (the newest is n - 1)
        lo = max(0, n - hist)  # window [lo, n)
        if lo != start:  # the window slid (or this is the first step): recompute it
            tokens, start, new_from = _Tokens(len(pred.blocks)), lo, lo
            n_shared = max(0, (c - 1) - lo)
            if n_shared:
                x = ctx_in[:, lo:lo + n_shared] + pred.pos_embed[:, :n_shared]  # (E, p, W)
                mods = [m[:, lo:lo + n_shared].unsqueeze(1) for m in ctx_mods]
                _run_blocks(pred, x.unsqueeze(1), mods, tokens, shared=True, last_only=False)
            new_from = lo + n_shared
        else:
            new_from = n - 1
        # the new own tokens: indices new_from .. n-1 -> own index j = i - (c - 1)
        j0, j1 = new_from - (c - 1), n - (c - 1)
        x = torch.cat(own_in[j0:j1], dim=2) + pred.pos_embed[:, new_from - lo:n - lo].unsqueeze(1)  # (E, S, m, W)
        mods = [m[:, :, j0:j1] for m in plan_mods]
        grows = h + 1 < H and n + 1 <= hist  # the next window keeps this one's tokens and positions
        x = _run_blocks(pred, x, mods, tokens, shared=False, last_only=True, keep_kv=grows)  # (E, S, 1, W)
        z_next = pred.projector(pred.norm(x[:, :, -1]))  # (E, S, D)
        preds.append(z_next)
        if h + 1 < H:
            own_in.append(pred.input(z_next).unsqueeze(2))
    return torch.stack(preds, dim=2)  # (E, S, H, D)
