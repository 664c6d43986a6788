"""Loss pieces of the two training loops that close the farm's loops (issue 10), as pure functions of
tensors so they can be tested against hand-computed values.

LightningRL (SJTU-DENG-Lab/LightningRL, docs/RL.md "The learner"): per response token t of a kept
sample i with batch advantage A_i (computed by the farm, libs/rl/src/advantages.ts),

    r_t      = exp(logp_new_t - logp_old_t)                      (log-ratio clamped to [-10, 10], as the reference)
    policy   = - sum_t min(r_t A_i, clip(r_t, 1 - eps, 1 + eps) A_i) / N_tokens     eps = 0.2, both sides
    kl (k3)  = sum_t [exp(logp_ref_t - logp_new_t) - (logp_ref_t - logp_new_t) - 1] / N_tokens
    nll      = - sum_{t in correct samples} logp_new_t / N_correct_tokens            (0 when no correct sample)
    loss     = policy + beta * kl + nll_weight * nll                                  beta = 0.01, nll_weight = 0.1

dParallel certainty forcing (czg1225/dParallel llada_train.py, docs/DISTILL.md): with a mask m and its
complement m' inside a chosen block,

    loss = CE(m) + CE(m') + lambda * (H(m) + H(m'))                 lambda = 2 (the reference trainer's entropy_weight)
    CE(m) = mean over masked positions of -log p(label)
    H(m)  = mean over masked positions the model already predicts correctly (argmax == label) of the entropy
            of softmax(logits / T), T = 0.5

Every function takes a boolean `mask` selecting the positions that count; shapes are documented per function.
"""
import math

import torch
import torch.nn.functional as F

PPO_EPS = 0.2
KL_BETA = 0.01
NLL_WEIGHT = 0.1
CF_TEMPERATURE = 0.5
CF_ENTROPY_WEIGHT = 2.0
LOG_RATIO_CLAMP = 10.0


def _count(mask):
    return mask.sum().clamp(min=1).to(torch.float32)


def ppo_clip(logp_new, logp_old, adv, mask, eps=PPO_EPS):
    """PPO-clip surrogate, token level, symmetric clipping [1 - eps, 1 + eps].

    logp_new, logp_old: [B, T] per-token log-probs (current policy, with grad; behaviour policy, no grad).
    adv: [B] per-sample advantage (broadcast to tokens) or [B, T]. mask: bool [B, T] tokens that count.
    -> (loss scalar, stats dict {clip_frac, ratio_mean}); loss = -sum(min(r A, clip(r) A) * mask) / sum(mask).
    clip_frac is the fraction of counted tokens whose ratio lies outside [1 - eps, 1 + eps]."""
    if adv.dim() == 1:
        adv = adv[:, None].expand_as(logp_new)
    log_ratio = torch.where(mask, logp_new - logp_old, torch.zeros_like(logp_new)).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    clipped = ratio.clamp(1 - eps, 1 + eps)
    surrogate = torch.min(ratio * adv, clipped * adv)
    n = _count(mask)
    loss = -(surrogate * mask).sum() / n
    with torch.no_grad():
        outside = ((ratio > 1 + eps) | (ratio < 1 - eps)) & mask
        stats = dict(clip_frac=float(outside.sum() / n), ratio_mean=float((ratio * mask).sum() / n))
    return loss, stats


def kl_k3(logp_new, logp_ref, mask):
    """k3 estimator of KL(new || ref) per token (Schulman): exp(d) - d - 1 with d = logp_ref - logp_new; always >= 0.
    logp_new, logp_ref: [B, T]; mask: bool [B, T]. -> mean over the counted tokens (scalar, grad through logp_new)."""
    d = torch.where(mask, logp_ref - logp_new, torch.zeros_like(logp_new))
    k3 = torch.exp(d) - d - 1
    return (k3 * mask).sum() / _count(mask)


def nll_on_correct(logp_new, mask, correct):
    """Token-level NLL on the responses of correct samples only. logp_new: [B, T]; mask: bool [B, T]; correct: bool [B].
    -> -sum(logp over correct samples' counted tokens) / their count; exactly 0 (with grad) when no sample is correct."""
    m = mask & correct[:, None]
    if not bool(m.any()):
        return logp_new.sum() * 0.0
    return -(logp_new * m).sum() / _count(m)


def lightningrl_loss(logp_new, logp_old, logp_ref, adv, mask, correct, eps=PPO_EPS, beta=KL_BETA, nll_weight=NLL_WEIGHT):
    """The LightningRL learner loss = PPO-clip + beta * k3 KL to the reference + nll_weight * NLL on correct samples.
    Shapes as in ppo_clip / kl_k3 / nll_on_correct. -> (loss, stats {policy_loss, kl, nll, clip_frac, ratio_mean, loss})."""
    policy, st = ppo_clip(logp_new, logp_old, adv, mask, eps)
    kl = kl_k3(logp_new, logp_ref, mask)
    nll = nll_on_correct(logp_new, mask, correct)
    loss = policy + beta * kl + nll_weight * nll
    st.update(policy_loss=float(policy), kl=float(kl), nll=float(nll), loss=float(loss))
    return loss, st


def masked_ce(logits, labels, mask):
    """Mean cross-entropy over the masked positions. logits [B, L, V], labels [B, L] (long), mask bool [B, L].
    -> scalar; 0 (with grad) when nothing is masked."""
    if not bool(mask.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask], labels[mask], reduction="sum") / _count(mask)


def entropy_on_correct(logits, labels, mask, temperature=CF_TEMPERATURE):
    """dParallel's certainty-forcing term: mean entropy (nats) of softmax(logits / temperature) over the masked
    positions whose argmax already equals the label (the selection itself carries no gradient).
    logits [B, L, V], labels [B, L], mask bool [B, L] -> (scalar, number of positions used)."""
    correct = (logits.detach().argmax(-1) == labels) & mask
    n = int(correct.sum())
    if n == 0:
        return logits.sum() * 0.0, 0
    logp = F.log_softmax(logits[correct] / temperature, dim=-1)
    h = -(logp.exp() * logp).sum(-1)
    return h.sum() / n, n


def certainty_forcing_loss(logits, labels, mask, logits_c, mask_c, temperature=CF_TEMPERATURE, entropy_weight=CF_ENTROPY_WEIGHT):
    """CE(mask) + CE(complement) + entropy_weight * (H(mask) + H(complement)), each term averaged over its own
    positions (dParallel). logits/logits_c [B, L, V] for the two masked copies (already aligned with labels, i.e.
    token-shifted for a Fast-dLLM v2 model), labels [B, L], mask/mask_c bool [B, L].
    -> (loss, stats {ce, ce_comp, entropy, entropy_comp, correct_frac})."""
    ce = masked_ce(logits, labels, mask)
    ce_c = masked_ce(logits_c, labels, mask_c)
    h, n = entropy_on_correct(logits, labels, mask, temperature)
    h_c, n_c = entropy_on_correct(logits_c, labels, mask_c, temperature)
    loss = ce + ce_c + entropy_weight * (h + h_c)
    total = int(mask.sum()) + int(mask_c.sum())
    stats = dict(ce=float(ce), ce_comp=float(ce_c), entropy=float(h), entropy_comp=float(h_c), correct_frac=(n + n_c) / max(1, total), loss=float(loss))
    return loss, stats


def certainty_forcing_masks(eligible, block, p, generator):
    """dParallel's training mask schedule, on a block-diffusion model's absolute-aligned blocks.

    eligible: bool [B, L] the response positions (answer + the PAD tail of the EOS block), L a multiple of `block`.
    Per row: pick one block k uniformly among the blocks holding eligible positions; inside it mask each eligible
    position with probability p (-> mask) and the rest of its eligible positions form the complement (-> mask_c);
    eligible positions of later blocks are fully masked in both copies (`later`, never supervised); earlier blocks
    stay clean. -> (mask, mask_c, later, k [B]) with bool [B, L] tensors and k the block index per row (-1 when the
    row has no eligible position)."""
    B, L = eligible.shape
    if L % block:
        raise ValueError(f"sequence length {L} is not a multiple of the block size {block}")
    nb = L // block
    has = eligible.view(B, nb, block).any(-1)  # [B, nb]
    k = torch.full((B,), -1, dtype=torch.long)
    for i in range(B):
        blocks = has[i].nonzero().flatten()
        if len(blocks):
            k[i] = blocks[int(torch.randint(len(blocks), (1,), generator=generator))]
    bidx = torch.arange(L)[None].expand(B, L) // block
    in_k = (bidx == k[:, None]) & eligible
    draw = torch.rand((B, L), generator=generator) < p
    mask = in_k & draw
    mask_c = in_k & ~draw
    later = (bidx > k[:, None]) & eligible & (k[:, None] >= 0)
    return mask, mask_c, later, k


def token_entropy(logits, temperature=1.0):
    """Entropy (nats) of softmax(logits / temperature) per position: [..., V] -> [...]."""
    logp = F.log_softmax(logits / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("math", "torch", "F")]
