"""Block-diffusion batches for the learner and the distillation trainer, on top of tools/train (the model,
the Fast-dLLM v2 attention mask and token shift are imported from there, never duplicated).

Layout (tools/train/README.md step 3): input [noisy || clean], 2L tokens, positions 0..L-1 twice; a noisy block
sees itself bidirectionally and the clean blocks before it; the clean stream is block-causal; position i is
predicted by the output at i-1 (for the first slot of a block, the clean stream's output at i-1).
Blocks are `train.BLOCK` (32) tokens aligned to absolute positions, as the engine decodes them."""
import math
import os
import sys

import torch
import torch.nn.functional as F

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "train"))
import train  # noqa: E402  (tools/train/train.py)
from train import BLOCK, dllm_allowed, shifted_dllm_logits  # noqa: E402,F401

import losses  # noqa: E402


def pack(rows, vocab, device="cpu"):
    """rows: list of (prompt_ids, response_ids). -> (clean [B, L] long, eligible bool [B, L], L) where L is the
    longest prompt+response rounded up to a block, the tail is PAD, and eligible marks the response positions plus
    the PAD tail of the block holding the response's end (the positions a decoder fills), as train.dllm_batch does."""
    lens = [len(p) + len(r) for p, r in rows]
    L = int(math.ceil(max(lens) / BLOCK) * BLOCK)
    clean = torch.full((len(rows), L), vocab.pad, dtype=torch.long)
    eligible = torch.zeros((len(rows), L), dtype=torch.bool)
    for i, (p, r) in enumerate(rows):
        seq = list(p) + list(r)
        clean[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        end = int(math.ceil(len(seq) / BLOCK) * BLOCK)
        eligible[i, len(p) : end] = True
    return clean.to(device), eligible.to(device), L


def forward_pred(model, noisy, clean):
    """One forward over [noisy || clean] (both [B, L]) -> token-shifted logits [B, L, V] for the noisy stream."""
    L = clean.shape[1]
    inp = torch.cat([noisy, clean], 1)
    half = torch.arange(L, device=clean.device)
    pos = torch.cat([half, half])[None].expand_as(inp)
    logits = model(inp, pos, dllm_allowed(L, clean.device))
    return shifted_dllm_logits(logits, L)


def response_logprobs(model, rows, vocab, device="cpu"):
    """The learner's per-token log-probs of each response: every response position masked (the whole PAD-completed
    block tail too), under the training block-size mask, one forward for the batch (docs/RL.md "The learner").
    rows: list of (prompt_ids, response_ids). -> (logp [B, R] float32, mask bool [B, R]) with R the longest response;
    logp[i, j] = log p(response_i[j] | prompt_i, earlier blocks clean, the rest of its block masked)."""
    clean, eligible, L = pack(rows, vocab, device)
    noisy = torch.where(eligible, torch.full_like(clean, vocab.mask), clean)
    pred = forward_pred(model, noisy, clean)
    logp_all = F.log_softmax(pred.float(), -1).gather(-1, clean[..., None]).squeeze(-1)  # [B, L]
    R = max(1, max(len(r) for _, r in rows))
    logp = torch.zeros((len(rows), R), dtype=torch.float32, device=device)
    mask = torch.zeros((len(rows), R), dtype=torch.bool, device=device)
    idx = torch.zeros((len(rows), R), dtype=torch.long, device=device)
    for i, (p, r) in enumerate(rows):
        n = len(r)
        idx[i, :n] = torch.arange(len(p), len(p) + n, device=device)
        mask[i, :n] = True
    logp = torch.where(mask, logp_all.gather(1, idx), logp)
    return logp, mask


def certainty_forcing_batch(model, rows, vocab, generator, p=0.5, temperature=losses.CF_TEMPERATURE, entropy_weight=losses.CF_ENTROPY_WEIGHT):
    """dParallel certainty-forcing loss on a batch of (prompt_ids, response_ids incl. EOS): the mask schedule of
    losses.certainty_forcing_masks (one random block k per row masked with probability p, its complement as a
    second copy, later blocks fully masked), both copies in one forward, then losses.certainty_forcing_loss.
    -> (loss, stats)."""
    device = next(model.parameters()).device
    clean, eligible, L = pack(rows, vocab, device)
    m, mc, later, _ = losses.certainty_forcing_masks(eligible.cpu(), BLOCK, p, generator)
    m, mc, later = m.to(device), mc.to(device), later.to(device)
    mask_id = torch.full_like(clean, vocab.mask)
    noisy = torch.cat([torch.where(m | later, mask_id, clean), torch.where(mc | later, mask_id, clean)], 0)
    pred = forward_pred(model, noisy, torch.cat([clean, clean], 0))
    B = len(rows)
    return losses.certainty_forcing_loss(pred[:B], clean, m, pred[B:], mc, temperature, entropy_weight)
