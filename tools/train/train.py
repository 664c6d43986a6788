#!/usr/bin/env python3
"""dllm-farm training tool: pre-train a tiny Qwen2-style AR model on the task suite, adapt it into a
block-diffusion model with the Fast-dLLM v2 recipe, evaluate both on held-out problems.

  train.py ar    --data DIR --out DIR [--steps N ...]        AR pre-training (loss on answer tokens)
  train.py dllm  --data DIR --init AR_DIR --out DIR [...]    Fast-dLLM v2 adaptation from the AR weights
  train.py eval  --data DIR --model DIR [--mode ...]          held-out exact-match accuracy (+ TPF)

DIR (data) holds what `dllm-farm tasks` wrote: tokenizer.json, <family>-train.jsonl, <family>-test.jsonl.
Model dirs are Hugging Face style: config.json + model.safetensors + tokenizer.json (+ train_log.json).
"""
import argparse
import itertools
import json
import lzma
import math
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Qwen2, block_causal_allowed, causal_allowed  # noqa: E402
import safetensors_io  # noqa: E402

FAMILIES = ["arith", "string"]
BLOCK = 32
SIZES = {
    # name: hidden, layers, heads, kv heads, intermediate
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=384),
    "small": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=6, num_key_value_heads=2, intermediate_size=512),
    "base": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4, intermediate_size=640),
}


def log(*a):
    print(*a, flush=True)


# ---------------------------------------------------------------- data


class Vocab:
    def __init__(self, tokenizer_path):
        spec = json.load(open(tokenizer_path))
        self.vocab = spec["model"]["vocab"]
        self.inv = {i: t for t, i in self.vocab.items()}
        self.pad = self.vocab["<|pad|>"]
        self.eos = self.vocab["<|eos|>"]
        self.mask = self.vocab["<|mask|>"]
        self.size = len(self.vocab)
        self.delimiters = [self.vocab[c] for c in ["\n", ",", ".", ";", ":", "?"] if c in self.vocab]

    def encode(self, text):
        try:
            return [self.vocab[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e} is not in the tokenizer vocabulary") from None

    def decode(self, ids):
        return "".join(self.inv[i] for i in ids if i not in (self.pad, self.eos, self.mask))


def read_jsonl(path, limit=None):
    """Rows of a JSONL file; reads PATH.xz (xz-compressed, as carried to a training machine) when PATH is absent."""
    out = []
    opener = open
    if not os.path.exists(path) and os.path.exists(path + ".xz"):
        path, opener = path + ".xz", lzma.open
    with opener(path, "rt") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if limit and len(out) >= limit:
                    break
    return out


class TrainSet:
    """Encoded (prompt, answer) pairs of all families, sampled with fixed family weights."""

    def __init__(self, data_dir, vocab, weights):
        self.by_family = {}
        for fam in FAMILIES:
            path = os.path.join(data_dir, f"{fam}-train.jsonl")
            rows = read_jsonl(path)
            self.by_family[fam] = [(vocab.encode(r["prompt"]), vocab.encode(r["solution"]) + [vocab.eos]) for r in rows]
            log(f"loaded {len(rows)} {fam} training problems")
        self.weights = weights

    def sample(self, rng, n):
        fams = rng.choices(list(self.weights), weights=list(self.weights.values()), k=n)
        return [rng.choice(self.by_family[f]) for f in fams]


def ar_batch(pairs, pad):
    """-> ids [B,S], targets [B,S] (next-token labels, -100 outside the answer)."""
    S = max(len(p) + len(a) for p, a in pairs)
    ids = torch.full((len(pairs), S), pad, dtype=torch.long)
    tgt = torch.full((len(pairs), S), -100, dtype=torch.long)
    for i, (p, a) in enumerate(pairs):
        seq = p + a
        ids[i, : len(seq)] = torch.tensor(seq)
        # position t predicts token t+1; supervise the answer tokens (solution + EOS)
        tgt[i, len(p) - 1 : len(seq) - 1] = torch.tensor(a)
    return ids, tgt


def dllm_batch(pairs, vocab, rng):
    """Fast-dLLM v2 training batch. Returns input [2B, 2L] = [noisy || clean] for each sequence and its
    complementary copy, labels [2B, L] for the noisy stream (-100 where not masked), L (block-aligned)."""
    lens = [len(p) + len(a) for p, a in pairs]
    L = int(math.ceil(max(lens) / BLOCK) * BLOCK)
    B = len(pairs)
    clean = torch.full((B, L), vocab.pad, dtype=torch.long)
    eligible = torch.zeros((B, L), dtype=torch.bool)
    for i, (p, a) in enumerate(pairs):
        seq = p + a
        clean[i, : len(seq)] = torch.tensor(seq)
        end = int(math.ceil(len(seq) / BLOCK) * BLOCK)  # the EOS block is completed with PAD, which is supervised
        eligible[i, len(p) : end] = True  # only answer positions are ever masked; the prompt stays clean
    # per 32-token block: t ~ U(0,1), mask with p = (1-eps) t + eps
    nb = L // BLOCK
    t = torch.rand((B, nb), generator=rng)
    p_mask = ((1 - 1e-3) * t + 1e-3).repeat_interleave(BLOCK, dim=1)
    m = (torch.rand((B, L), generator=rng) < p_mask) & eligible
    m_comp = eligible & ~m  # complementary copy: every answer token is supervised once per pair
    masks = torch.cat([m, m_comp], 0)
    clean2 = torch.cat([clean, clean], 0)
    noisy = torch.where(masks, torch.full_like(clean2, vocab.mask), clean2)
    labels = torch.where(masks, clean2, torch.full_like(clean2, -100))
    return torch.cat([noisy, clean2], 1), labels, L


def dllm_allowed(L, device=None):
    """[1, 2L, 2L] mask over [noisy || clean]: noisy block b sees itself (bidirectional) and clean blocks < b;
    clean block b sees clean blocks <= b (block-causal); clean never sees noisy."""
    b = torch.arange(L, device=device) // BLOCK
    nn_ = b[None, :] == b[:, None]
    nc = b[None, :] < b[:, None]
    cc = b[None, :] <= b[:, None]
    top = torch.cat([nn_, nc], 1)
    bottom = torch.cat([torch.zeros_like(cc), cc], 1)
    return torch.cat([top, bottom], 0)[None]


def shifted_dllm_logits(logits, L):
    """Token shift: the logit for noisy position i is the output at i-1; for the first slot of a block,
    i-1 lies in the previous block, whose output is taken from the clean stream. -> [B, L, V] (slot 0 unused)."""
    noisy, clean = logits[:, :L], logits[:, L:]
    pred = torch.empty_like(noisy)
    pred[:, 1:] = noisy[:, :-1]
    starts = torch.arange(BLOCK, L, BLOCK, device=logits.device)
    pred[:, starts] = clean[:, starts - 1]
    pred[:, 0] = noisy[:, 0]
    return pred


# ---------------------------------------------------------------- checkpoints


# config.json keys that describe the model rather than its weights (the decoding defaults dllm-farm's
# manifest carries, docs/MODEL_FORMAT.md): kept from the config a model was loaded from, so a checkpoint
# the learner or trainer writes converts to a version that decodes as its parent did.
CARRIED_CONFIG_KEYS = ("decode_defaults",)


def save_model(model, vocab, out_dir, tokenizer_path, kind, extra_log=None):
    os.makedirs(out_dir, exist_ok=True)
    extra = dict(eos_token_id=vocab.eos, pad_token_id=vocab.pad, mask_token_id=vocab.mask, bos_token_id=vocab.vocab.get("<|bos|>"))
    if kind == "block-diffusion":
        extra.update(bd_size=BLOCK, dllm_kind="block-diffusion")
    else:
        extra.update(dllm_kind="autoregressive")
    extra["delimiter_token_ids"] = vocab.delimiters
    extra.update(getattr(model, "carried_config", {}))
    cfg = model.config.to_hf(**extra)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tensors = {k: v for k, v in model.state_dict().items()}
    safetensors_io.save(tensors, os.path.join(out_dir, "model.safetensors"), {"format": "pt"})
    shutil.copyfile(tokenizer_path, os.path.join(out_dir, "tokenizer.json"))
    if extra_log is not None:
        with open(os.path.join(out_dir, "train_log.json"), "w") as f:
            json.dump(extra_log, f, indent=1)


def load_model(model_dir, device):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    keys = Config.__dataclass_fields__.keys()
    c = Config(**{k: cfg[k] for k in keys if k in cfg})
    model = Qwen2(c).to(device)
    sd = safetensors_io.load(os.path.join(model_dir, "model.safetensors"))
    model.load_state_dict(sd)
    model.carried_config = {k: cfg[k] for k in CARRIED_CONFIG_KEYS if k in cfg}
    return model, cfg


# ---------------------------------------------------------------- decoding + eval


def extract(family, text):
    """Mirror of libs/tasks extract(): text after the first '####' to the end of its line."""
    at = text.find("####")
    if at < 0:
        return None
    line = text[at + 4 :].split("\n", 1)[0].strip()
    if not line:
        return None
    if family == "arith":
        s = line[1:] if line.startswith("-") else line
        return str(int(line)) if s.isdigit() and len(s) <= 15 else None
    if line.isdigit() and len(line) <= 3:
        return str(int(line))
    return line if line.isalpha() and line.isascii() and len(line) <= 32 else None


@torch.no_grad()
def ar_generate(model, vocab, prompts, max_new=64, device="cpu"):
    """Greedy AR decoding, one token per forward, batched by prompt length. -> list of token lists."""
    out = [None] * len(prompts)
    groups = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    for plen, idx in groups.items():
        seq = torch.tensor([prompts[i] for i in idx], dtype=torch.long, device=device)
        done = torch.zeros(len(idx), dtype=torch.bool, device=device)
        for _ in range(max_new):
            S = seq.shape[1]
            pos = torch.arange(S, device=device)[None].expand(len(idx), S)
            nxt = model(seq, pos, causal_allowed(S, device))[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, vocab.pad), nxt)
            seq = torch.cat([seq, nxt[:, None]], 1)
            done |= nxt == vocab.eos
            if bool(done.all()):
                break
        for j, i in enumerate(idx):
            gen = seq[j, plen:].tolist()
            out[i] = gen[: gen.index(vocab.eos) + 1] if vocab.eos in gen else gen
    return out, None


@torch.no_grad()
def dllm_generate(model, vocab, prompts, max_new=64, threshold=None, sub_block=8, device="cpu"):
    """Block-diffusion decoding with the Fast-dLLM v2 rules (block-causal attention, token shift).
    threshold None: AR order (one token per forward, leftmost mask first). Else: commit every masked
    position of the active sub-block whose probability > threshold, at least the most confident one.
    Recomputes the full prefix each step (no KV cache: this is a correctness check, not the engine).
    -> (token lists, forwards per row) where forwards counts denoising steps plus one cache-write
    forward per completed block, as the engine counts them."""
    out = [None] * len(prompts)
    fwd = [0] * len(prompts)
    groups = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p), []).append(i)
    for plen, idx in groups.items():
        n = len(idx)
        total = plen + max_new
        L = int(math.ceil(total / BLOCK) * BLOCK)
        seq = torch.full((n, L), vocab.mask, dtype=torch.long, device=device)
        seq[:, :plen] = torch.tensor([prompts[i] for i in idx], dtype=torch.long, device=device)
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        steps = torch.zeros(n, dtype=torch.long)
        bs = (plen // BLOCK) * BLOCK
        while bs < total and not bool(finished.all()):
            be = bs + BLOCK
            pos = torch.arange(be, device=device)[None].expand(n, be)
            allowed = block_causal_allowed(be, BLOCK, device)
            lo = max(bs, plen)
            while True:
                window = seq[:, lo:be]
                masked = (window == vocab.mask) & ~finished[:, None]
                if not bool(masked.any()):
                    break
                logits = model(seq[:, :be], pos, allowed)
                pred = logits[:, lo - 1 : be - 1]  # token shift: position i is predicted at i-1
                prob = torch.softmax(pred.float(), -1)
                conf, tok = prob.max(-1)
                # active sub-block: the first aligned sub-block of the block that still has a mask
                col = torch.arange(lo, be, device=device)[None].expand(n, -1)
                first = torch.where(masked, col, torch.full_like(col, be)).min(1).values
                sb_start = bs + ((first - bs) // sub_block) * sub_block
                active = masked & (col >= sb_start[:, None]) & (col < (sb_start + sub_block)[:, None])
                if threshold is None:
                    commit = masked & (col == first[:, None])
                else:
                    c = torch.where(active, conf, torch.full_like(conf, -1.0))
                    best = c.argmax(1)
                    commit = active & (conf > threshold)
                    commit[torch.arange(n), best] |= active[torch.arange(n), best]
                rows = masked.any(1)
                steps += rows.long().cpu()
                seq[:, lo:be] = torch.where(commit, tok, window)
            # block done: the engine runs one more forward to write the block's KV
            steps += (~finished).long().cpu()
            finished |= (seq[:, lo:be] == vocab.eos).any(1)
            bs = be
        for j, i in enumerate(idx):
            gen = seq[j, plen:total].tolist()
            gen = gen[: gen.index(vocab.eos) + 1] if vocab.eos in gen else [t for t in gen if t != vocab.mask]
            out[i] = gen
            fwd[i] = int(steps[j])
    return out, fwd


def evaluate(model, vocab, data_dir, mode, n=200, families=FAMILIES, threshold=0.9, device="cpu"):
    model.eval()
    results = {}
    for fam in families:
        rows = read_jsonl(os.path.join(data_dir, f"{fam}-test.jsonl"), n)
        prompts = [vocab.encode(r["prompt"]) for r in rows]
        if mode == "ar":
            gens, fwd = ar_generate(model, vocab, prompts, device=device)
        elif mode == "dllm-ar":
            gens, fwd = dllm_generate(model, vocab, prompts, threshold=None, device=device)
        elif mode == "dllm-threshold":
            gens, fwd = dllm_generate(model, vocab, prompts, threshold=threshold, device=device)
        else:
            raise ValueError(f"unknown eval mode {mode}")
        correct = exact = 0
        toks = 0
        for r, g in zip(rows, gens):
            text = vocab.decode(g)
            correct += extract(fam, text) == r["answer"]
            exact += text == r["solution"] and g[-1:] == [vocab.eos]
            toks += len(g)
        res = dict(n=len(rows), accuracy=correct / len(rows), exact_solution=exact / len(rows))
        if fwd is not None:
            res["tpf"] = toks / max(1, sum(fwd))
        results[fam] = res
    model.train()
    return results


# ---------------------------------------------------------------- training


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    prog = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))


def train(args, stage):
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    rng = random.Random(args.seed)
    grng = torch.Generator().manual_seed(args.seed)
    device = args.device
    vocab = Vocab(os.path.join(args.data, "tokenizer.json"))
    data = TrainSet(args.data, vocab, {"arith": args.arith_weight, "string": 1 - args.arith_weight})
    if stage == "ar" and args.init:
        model, _ = load_model(args.init, device)  # continue pre-training from a checkpoint (fresh optimizer)
    elif stage == "ar":
        c = Config(vocab_size=vocab.size, head_dim=SIZES[args.size]["hidden_size"] // SIZES[args.size]["num_attention_heads"], **SIZES[args.size])
        model = Qwen2(c).to(device)
    else:
        model, _ = load_model(args.init, device)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"{stage}: {nparams} parameters, config {model.config}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.98))
    history = dict(stage=stage, args=vars(args), parameters=nparams, loss=[], evals=[])
    t0 = time.time()
    run = 0.0
    kind = "block-diffusion" if stage == "dllm" else "autoregressive"
    allowed_cache = {}
    stop_at = min(args.steps, args.stop_at or args.steps)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    first = 0
    if args.resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.setstate(state["python_rng"])
        grng.set_state(state["mask_rng"])
        torch.set_rng_state(state["torch_rng"])
        history, run, first = state["history"], state["ema_loss"], state["step"]
        t0 -= history.get("train_seconds", 0.0)
        log(f"{stage}: resumed from {ckpt_path} at step {first}")

    def checkpoint(step_done):
        """Full training state (weights, AdamW moments, the three RNG streams, loss EMA, log) so that
        --resume continues the same run bit for bit; written to a temp file and renamed (atomic)."""
        os.makedirs(args.out, exist_ok=True)
        tmp = ckpt_path + ".tmp"
        torch.save(dict(model=model.state_dict(), optimizer=opt.state_dict(), python_rng=rng.getstate(), mask_rng=grng.get_state(),
                        torch_rng=torch.get_rng_state(), history=history, ema_loss=run, step=step_done), tmp)
        os.replace(tmp, ckpt_path)

    eval_data = args.eval_data or args.data
    eval_mode = args.eval_mode or ("ar" if stage == "ar" else "dllm-ar")
    best_dir = os.path.join(args.out, "best")
    probe_t0 = None

    def fit_budget(step_done):
        """--time-budget: from the seconds per step measured over the probe steps, fix --steps (the lr schedule's
        length, rounded down to 100) so training plus --eval-count evaluations ends within the budget; the
        chosen value is logged and kept in train_log.json, so `--steps N` without a budget repeats the run."""
        nonlocal stop_at
        per_step = (time.time() - probe_t0) / args.budget_probe
        remaining = args.time_budget - (time.time() - t0) - args.eval_seconds * args.eval_count
        args.steps = max(step_done + 100, int((step_done + remaining / per_step) // 100 * 100))
        stop_at = args.steps
        args.eval_every = max(100, args.steps // max(1, args.eval_count) // 100 * 100)
        history["steps_from_budget"] = dict(steps=args.steps, seconds_per_step=round(per_step, 5), budget=args.time_budget, eval_every=args.eval_every)
        log(f"{stage}: {per_step * 1000:.1f} ms/step -> --steps {args.steps} (eval every {args.eval_every}) for a {args.time_budget:.0f}s budget")

    for step in itertools.count(first):
        if step >= stop_at:  # not range(): --time-budget moves stop_at once the step time is known
            break
        if args.time_budget and step == first + 5:
            probe_t0 = time.time()  # the first steps include CUDA/allocator warm-up
        if args.time_budget and step == first + 5 + args.budget_probe:
            fit_budget(step)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        pairs = data.sample(rng, args.batch)
        if stage == "ar":
            ids, tgt = ar_batch(pairs, vocab.pad)
            ids, tgt = ids.to(device), tgt.to(device)
            S = ids.shape[1]
            if ("ar", S) not in allowed_cache:
                allowed_cache[("ar", S)] = causal_allowed(S, device)
            pos = torch.arange(S, device=device)[None].expand_as(ids)
            logits = model(ids, pos, allowed_cache[("ar", S)])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
        else:
            inp, labels, L = dllm_batch(pairs, vocab, grng)
            inp, labels = inp.to(device), labels.to(device)
            if ("dllm", L) not in allowed_cache:
                allowed_cache[("dllm", L)] = dllm_allowed(L, device)
            half = torch.arange(L, device=device)
            pos = torch.cat([half, half])[None].expand_as(inp)
            logits = model(inp, pos, allowed_cache[("dllm", L)])
            pred = shifted_dllm_logits(logits, L)
            loss = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), labels.reshape(-1), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run = loss.item() if step == 0 else 0.98 * run + 0.02 * loss.item()
        if (step + 1) % args.log_every == 0:
            el = time.time() - t0
            log(f"{stage} step {step + 1}/{args.steps} loss {run:.4f} lr {opt.param_groups[0]['lr']:.2e} {el:.0f}s")
            history["loss"].append([step + 1, round(run, 5), round(el, 1)])
        if args.save_every and (step + 1) % args.save_every == 0 and (step + 1) % args.eval_every != 0:
            history["train_seconds"] = round(time.time() - t0, 1)
            history["steps_done"] = step + 1
            save_model(model, vocab, args.out, os.path.join(args.data, "tokenizer.json"), kind, history)
            checkpoint(step + 1)
        if (step + 1) % args.eval_every == 0 or step + 1 == stop_at:
            mode = eval_mode
            res = evaluate(model, vocab, eval_data, mode, n=args.eval_n, threshold=args.eval_threshold, device=device)
            history["evals"].append(dict(step=step + 1, mode=mode, data=eval_data, seconds=round(time.time() - t0, 1), results=res))
            log(f"{stage} step {step + 1} eval ({mode}, {args.eval_n}/family): " + json.dumps(res))
            history["train_seconds"] = round(time.time() - t0, 1)
            history["steps_done"] = step + 1
            save_model(model, vocab, args.out, os.path.join(args.data, "tokenizer.json"), kind, history)
            checkpoint(step + 1)
            if args.keep_best:
                # OUT/best: the weights with the highest mean accuracy over the families on the evaluation set
                # (choose it with a validation set, --eval-data, never the held-out test split)
                mean = sum(r["accuracy"] for r in res.values()) / len(res)
                if mean > history.get("best", {}).get("mean_accuracy", -1):
                    history["best"] = dict(step=step + 1, mean_accuracy=round(mean, 4), results=res)
                    save_model(model, vocab, best_dir, os.path.join(args.data, "tokenizer.json"), kind, history)
                    log(f"{stage}: step {step + 1} is the best so far (mean accuracy {mean:.4f}) -> {best_dir}")
        if args.snapshot_every and (step + 1) % args.snapshot_every == 0:
            # keep a copy of the weights at this step (checkpoint dirs to convert and evaluate later)
            save_model(model, vocab, os.path.join(args.out, f"step-{step + 1}"), os.path.join(args.data, "tokenizer.json"), kind, history)
    history["train_seconds"] = round(time.time() - t0, 1)
    save_model(model, vocab, args.out, os.path.join(args.data, "tokenizer.json"), kind, history)
    log(f"{stage}: done in {history['train_seconds']:.0f}s -> {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("ar", "dllm"):
        p = sub.add_parser(name)
        p.add_argument("--data", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--steps", type=int, default=4000)
        p.add_argument("--batch", type=int, default=64)
        p.add_argument("--lr", type=float, default=2e-3 if name == "ar" else 5e-4)
        p.add_argument("--warmup", type=int, default=100)
        p.add_argument("--stop-at", type=int, default=0, help="stop after this many steps; the lr schedule still spans --steps")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--arith-weight", type=float, default=0.6)
        p.add_argument("--log-every", type=int, default=50)
        p.add_argument("--eval-every", type=int, default=500)
        p.add_argument("--eval-n", type=int, default=100)
        p.add_argument("--save-every", type=int, default=0, help="also save a checkpoint every N steps (no eval)")
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (written at every --save-every) if it exists")
        p.add_argument("--snapshot-every", type=int, default=0, help="also keep the weights every N steps in OUT/step-N")
        p.add_argument("--eval-data", help="data dir whose <family>-test.jsonl the periodic evaluation reads (default --data); "
                       "point it at a validation set when choosing checkpoints")
        p.add_argument("--eval-mode", choices=["ar", "dllm-ar", "dllm-threshold"], help="decoding of the periodic evaluation (default ar / dllm-ar)")
        p.add_argument("--eval-threshold", type=float, default=0.9, help="confidence threshold of --eval-mode dllm-threshold")
        p.add_argument("--keep-best", action="store_true", help="keep the weights of the best periodic evaluation (mean accuracy) in OUT/best")
        p.add_argument("--time-budget", type=float, default=0, help="seconds: choose --steps from the measured step time so the run fits (for lent GPU time)")
        p.add_argument("--budget-probe", type=int, default=40, help="steps timed to fit --time-budget")
        p.add_argument("--eval-count", type=int, default=5, help="with --time-budget: evaluations over the run")
        p.add_argument("--eval-seconds", type=float, default=15, help="with --time-budget: seconds reserved per evaluation")
        if name == "ar":
            p.add_argument("--size", choices=list(SIZES), default="tiny")
            p.add_argument("--init", help="continue from this AR checkpoint dir (fresh optimizer and schedule)")
        else:
            p.add_argument("--init", required=True, help="AR checkpoint dir to start from")
    p = sub.add_parser("eval")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--mode", choices=["ar", "dllm-ar", "dllm-threshold"], action="append")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    threads = int(os.environ.get("TRAIN_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(threads)
    log(f"torch {torch.__version__}, device {args.device}, {threads} threads")
    if args.device == "cpu" and "BLAS_INFO=generic" in torch.__config__.show():
        # Debian's python3-torch uses whatever libblas.so.3 the alternatives system points at; the
        # reference BLAS measured 4.7 GFLOPS on a 1024^2 matmul here, OpenBLAS 32 (7x).
        try:
            blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
        except OSError:
            blas = "?"
        if "openblas" not in blas and "mkl" not in blas:
            log(f"warning: torch uses the reference BLAS ({blas}); install libopenblas0-openmp (Debian) for ~7x faster CPU training")
    if args.cmd in ("ar", "dllm"):
        train(args, args.cmd)
    else:
        vocab = Vocab(os.path.join(args.data, "tokenizer.json"))
        model, _ = load_model(args.model, args.device)
        allres = {}
        for mode in args.mode or ["ar"]:
            t0 = time.time()
            res = evaluate(model, vocab, args.data, mode, n=args.n, threshold=args.threshold, device=args.device)
            allres[mode] = res
            log(f"eval {args.model} {mode} ({time.time() - t0:.0f}s): {json.dumps(res)}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(allres, f, indent=1)


if __name__ == "__main__":
    main()
