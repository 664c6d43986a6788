#!/usr/bin/env python3
"""dllm-farm learner: closes the farm's training loops as an outside client (HTTP to the gateway, the CLI for
offline steps). Python 3 + PyTorch only; the model and masks come from tools/train.

  learn.py rl      --gateway URL --key KEY --model NAME --init DIR --out DIR --model-root DIR --steps N [...]
      LightningRL: per step POST /v1/rollouts on train-split problems (G=8, temperature 1, dynamic sampling),
      read the trajectories from /v1/rollouts/:id/stream as a consumer group, PPO-clip + k3 KL + NLL loss,
      optimizer step, safetensors checkpoint, `dllm-farm convert` into <model-root>/<version>, register it
      (POST /v1/models/:name/versions), wait until the workers serve it. Resumes from --out after a crash.
  learn.py distill --gateway URL --key KEY --model NAME --dataset ID --init DIR --out DIR --model-root DIR [...]
      dParallel certainty forcing on a /v1/distill dataset (downloaded through the API), then convert + register.

--init is a dllm-farm model directory (exported with `dllm-farm export`) or a Hugging Face style checkpoint
(config.json + model.safetensors + tokenizer.json). docs/RL.md "The learner" and docs/DISTILL.md describe the maths.
"""
import argparse
import collections
import copy
import json
import os
import random
import secrets
import shutil
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)

try:
    import torch
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("learn.py needs PyTorch: run it with a python3 that has torch (Debian: apt-get install python3-torch; /usr/bin/python3)")

import blockdiff  # noqa: E402  (puts tools/train on sys.path)
import losses  # noqa: E402
import train  # noqa: E402
from farm import Client, FarmError, read_stream, register_version, run_cli, wait_rollout  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def crash_point(name):
    """Fault injection for the resume tests: DLLM_LEARN_CRASH_AT=<name> kills the process here (exit 137, no cleanup)."""
    if os.environ.get("DLLM_LEARN_CRASH_AT") == name:
        log(f"learn.py: simulated crash at {name} (DLLM_LEARN_CRASH_AT)")
        os._exit(137)


# ---------------------------------------------------------------- state, checkpoints


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(out):
    p = os.path.join(out, "state.json")
    return json.load(open(p)) if os.path.exists(p) else None


def save_checkpoint(out, model, opt, vocab, tokenizer_path, progress):
    """out/ckpt: HF-style dir (config.json, model.safetensors, tokenizer.json) + optimizer.pt + progress.json (the
    step these weights are the result of), replaced atomically: a crash leaves the old or the new one, whole."""
    tmp = os.path.join(out, "ckpt.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train.save_model(model, vocab, tmp, tokenizer_path, "block-diffusion")
    torch.save(opt.state_dict(), os.path.join(tmp, "optimizer.pt"))
    with open(os.path.join(tmp, "progress.json"), "w") as f:
        json.dump(progress or {}, f)
    final = os.path.join(out, "ckpt")
    old = os.path.join(out, "ckpt.old")
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def prepare_init(args, dest):
    """--init as an HF checkpoint dir; a dllm-farm model dir (dllm.json) is exported first. -> HF dir path."""
    if not os.path.isdir(args.init):
        raise FarmError(f"--init {args.init} is not a directory")
    if os.path.exists(os.path.join(args.init, "model.safetensors")):
        return args.init
    if os.path.exists(os.path.join(args.init, "dllm.json")):
        shutil.rmtree(dest, ignore_errors=True)
        run_cli(args.cli, ["export", args.init, dest], "exporting --init")
        return dest
    raise FarmError(f"--init {args.init} has neither model.safetensors (HF checkpoint) nor dllm.json (dllm-farm model)")


def make_optimizer(model, lr):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999))


OWNER_FILE = "learn-run.json"


def convert_and_register(args, client, hf_dir, version, run_id):
    """dllm-farm convert hf_dir -> <model-root>/<version> (name = --model), then POST /v1/models/:name/versions.
    The version directory records the run that made it (learn-run.json): a directory or a registered version of
    another run is a version conflict (FarmError), never overwritten; this run's own (a crash after converting or
    registering) is reused."""
    target = os.path.abspath(os.path.join(args.model_root, version))
    owner = os.path.join(target, OWNER_FILE)
    if os.path.exists(target):
        mine = os.path.exists(owner) and json.load(open(owner)).get("run") == run_id
        if not mine:
            raise FarmError(f"version conflict: {target} already exists and was not written by this run ({run_id}); "
                            f"use another --version-prefix / --version or --model-root")
    else:
        tmp = target + ".converting"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(args.model_root, exist_ok=True)
        try:
            run_cli(args.cli, ["convert", hf_dir, tmp, "--name", args.model, "--version", version, "--json"], "converting the checkpoint")
        except FarmError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FarmError(f"the converter rejected {hf_dir}: {e}") from None
        with open(os.path.join(tmp, OWNER_FILE), "w") as f:
            json.dump({"run": run_id, "model": args.model, "version": version, "from": os.path.abspath(hf_dir)}, f)
        os.replace(tmp, target)
    return register_version(client, args.model, target, version)


# ---------------------------------------------------------------- problems


def load_problems(args, out):
    """Train-split problems: --problems JSONL files, else `dllm-farm tasks --split train` per family (cached in out/)."""
    path = os.path.join(out, "problems.jsonl")
    if not os.path.exists(path):
        rows_by = []
        if args.problems:
            for p in args.problems:
                rows_by.append(train.read_jsonl(p))
        else:
            for fam in args.families:
                txt = run_cli(args.cli, ["tasks", "--family", fam, "--split", "train", "--n", str(args.n_problems), "--seed", str(args.seed)], "generating problems")
                rows_by.append([json.loads(l) for l in txt.splitlines() if l.strip()])
        rows = [r for group in zip(*rows_by) for r in group] if len(rows_by) > 1 else rows_by[0]
        for r in rows:
            if r.get("split", "train") != "train":
                raise FarmError(f"problem {r.get('id')} is from the {r.get('split')} split; the learner trains on train-split problems only")
        with open(path + ".tmp", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        os.replace(path + ".tmp", path)
    rows = train.read_jsonl(path)
    if not rows:
        raise FarmError("no training problems")
    return rows


# ---------------------------------------------------------------- RL


def rollout_request(args, problems, offset, step, required_version):
    n = args.groups + args.reserve
    prompts = []
    for j in range(n):
        r = problems[(offset + j) % len(problems)]
        prompts.append({"id": f"s{step}-{j}", "prompt": r["prompt"], "answer": r["answer"], "verifier": {"name": f"task:{r['family']}"}})
    body = {
        "model": args.model,
        "groupSize": args.group_size,
        "prompts": prompts,
        "sampling": {"temperature": args.temperature, "seed": (args.seed * 1_000_003 + step * 7919) % 0xFFFFFFFF},
        "decoding": {"policy": args.policy, "threshold": args.threshold, "maxNewTokens": args.max_new}
        | ({"subBlockSize": args.sub_block_size} if args.sub_block_size else {}),
        "targetGroups": args.groups,
    }
    pol = {"onStale": "mark"}
    if args.max_staleness is not None:
        pol["maxStaleness"] = args.max_staleness
    elif required_version:
        pol["requiredVersion"] = required_version
    body["policy"] = pol
    return body, n


def record_rows(records, vocab):
    """Kept, advantage-carrying records -> (rows [(prompt_ids, response_ids)], adv [N], correct [N])."""
    rows, adv, correct = [], [], []
    for r in records:
        if not r.get("kept") or r.get("advantage") is None or not r.get("responseTokenIds"):
            continue
        p = r.get("promptTokenIds")  # trajectory schema 2; older records: encode the prompt text
        if not p:
            p = vocab.encode(r["prompt"])
            if r.get("promptTokens") and r["promptTokens"] != len(p):
                raise FarmError(f"record {r['groupId']}#{r['sampleIndex']}: the prompt encodes to {len(p)} tokens here but the worker saw "
                                f"{r['promptTokens']}; the learner's tokenizer differs from the served model's")
        rows.append((list(p), list(r["responseTokenIds"])))
        adv.append(float(r["advantage"]))
        correct.append(bool(r["correct"]))
    return rows, torch.tensor(adv, dtype=torch.float32), torch.tensor(correct, dtype=torch.bool)


def rollout_stats(records):
    groups = {}
    for r in records:
        groups.setdefault(r["groupId"], r)
    reasons = collections.Counter(g["filterReason"] or "kept" for g in groups.values())
    done = [r for r in records if r["status"] in ("completed", "truncated")]
    return dict(
        samples=len(records),
        accuracy=round(sum(r["correct"] for r in done) / max(1, len(done)), 4),
        tpf=round(sum(r["tpf"] for r in done) / max(1, len(done)), 4),
        groups=len(groups),
        kept_groups=reasons.get("kept", 0),
        filter_reasons={k: v for k, v in reasons.items() if k != "kept"},
        versions=dict(collections.Counter(r["policy"]["version"] for r in records)),
        stale=sum(1 for r in records if r.get("stale")),
    )


def learn_step(args, model, ref, opt, rows, adv, correct, vocab):
    """Old (behaviour) and reference log-probs without grad, then --ppo-epochs passes of minibatch updates."""
    device = args.device
    n = len(rows)
    mb = max(1, args.minibatch)
    with torch.no_grad():
        old, ref_lp = [], []
        for i in range(0, n, mb):
            old.append(blockdiff.response_logprobs(model, rows[i : i + mb], vocab, device)[0])
            ref_lp.append(blockdiff.response_logprobs(ref, rows[i : i + mb], vocab, device)[0])
    agg = collections.defaultdict(float)
    updates = 0
    order = list(range(0, n, mb))
    for _ in range(args.ppo_epochs):
        for k, i in enumerate(order):
            logp, mask = blockdiff.response_logprobs(model, rows[i : i + mb], vocab, device)
            loss, st = losses.lightningrl_loss(logp, old[k], ref_lp[k], adv[i : i + mb].to(device), mask, correct[i : i + mb].to(device),
                                               eps=args.clip_eps, beta=args.kl_beta, nll_weight=args.nll_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            for key, v in st.items():
                agg[key] += v
            updates += 1
    return {k: round(v / max(1, updates), 6) for k, v in agg.items()} | {"updates": updates, "trained_samples": n}


def probe_version(args, client, version, problems):
    """Waits until the workers serve `version`: small rollouts until every trajectory carries it (--sync-timeout)."""
    t_end = time.time() + args.sync_timeout
    r = problems[0]
    tries = 0
    while True:
        tries += 1
        body = {"model": args.model, "groupSize": 2, "prompts": [{"prompt": r["prompt"], "answer": r["answer"], "verifier": {"name": f"task:{r['family']}"}}],
                "sampling": {"temperature": 1}, "decoding": {"maxNewTokens": args.probe_tokens}, "reward": {"dropAllWrong": False}}
        rid = client.request("POST", "/v1/rollouts", body)["id"]
        wait_rollout(client, rid, args.rollout_timeout)
        lines = client.request("GET", f"/v1/rollouts/{rid}/trajectories", raw=True).decode().splitlines()
        seen = {json.loads(l)["policy"]["version"] for l in lines if l.strip()}
        if seen == {version}:
            return tries
        if time.time() > t_end:
            raise FarmError(f"the workers did not swap to {args.model} version {version} within {args.sync_timeout}s (probe rollouts saw {sorted(seen)})")
        time.sleep(0.5)


def cmd_rl(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    client = Client(args.gateway, args.key, args.http_timeout)
    listing = client.request("GET", f"/v1/models/{args.model}/versions")  # gateway up, key valid, model served
    state = load_state(out)
    if state is None:
        if args.version_prefix:  # a new run must not reuse another run's version names: say so before the first step
            taken = [v["version"] for v in listing.get("data", []) if v["version"].startswith(args.version_prefix + ".")]
            taken += [d for d in (os.listdir(args.model_root) if os.path.isdir(args.model_root) else []) if d.startswith(args.version_prefix + ".")]
            if taken:
                raise FarmError(f"version conflict: {args.model} versions with prefix '{args.version_prefix}' already exist ({', '.join(sorted(set(taken))[:3])}); "
                                f"choose another --version-prefix (or resume that run with its --out)")
        hf = prepare_init(args, os.path.join(out, "init"))
        # registered=False: before step 1 the starting weights are registered as <prefix>.0 and the workers swap to
        # them, so step 1's rollouts come from the weights the learner holds (not from whatever version was latest)
        state = dict(run_id=secrets.token_hex(3), step=0, registered=False, version=None, pending=None, problem_offset=0, init=os.path.abspath(hf))
        # the frozen reference policy for the KL term: the starting weights, kept for the whole run
        model, _ = train.load_model(hf, args.device)
        vocab = train.Vocab(os.path.join(hf, "tokenizer.json"))
        opt = make_optimizer(model, args.lr)
        shutil.rmtree(os.path.join(out, "ref"), ignore_errors=True)
        train.save_model(model, vocab, os.path.join(out, "ref"), os.path.join(hf, "tokenizer.json"), "block-diffusion")
        save_checkpoint(out, model, opt, vocab, os.path.join(hf, "tokenizer.json"), {"step": 0, "problem_offset": 0})
        write_json_atomic(os.path.join(out, "state.json"), state)
        log(f"rl: new run {state['run_id']} from {hf} (registry latest: {listing.get('latest')})")
    else:
        log(f"rl: resuming run {state['run_id']} after step {state['step']} (version {state['version']})")
    ck = os.path.join(out, "ckpt")
    tok = os.path.join(ck, "tokenizer.json")
    prog = json.load(open(os.path.join(ck, "progress.json"))) if os.path.exists(os.path.join(ck, "progress.json")) else {}
    if prog.get("step", 0) > state["step"]:  # crashed after writing the step's checkpoint, before state.json: never redo the update
        state.update(step=prog["step"], registered=False, pending=None, problem_offset=prog["problem_offset"])
        write_json_atomic(os.path.join(out, "state.json"), state)
    vocab = train.Vocab(tok)
    model, cfg = train.load_model(ck, args.device)
    if cfg.get("bd_size", blockdiff.BLOCK) != blockdiff.BLOCK:
        raise FarmError(f"the model's block size {cfg.get('bd_size')} differs from the training block size {blockdiff.BLOCK}")
    ref, _ = train.load_model(os.path.join(out, "ref"), args.device)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = make_optimizer(model, args.lr)
    opt.load_state_dict(torch.load(os.path.join(ck, "optimizer.pt")))
    for g in opt.param_groups:
        g["lr"] = args.lr
    problems = load_problems(args, out)
    prefix = args.version_prefix or f"rl-{state['run_id']}"
    logf = open(os.path.join(out, "log.jsonl"), "a")

    def save_state():
        write_json_atomic(os.path.join(out, "state.json"), state)

    if not state["registered"]:  # a new run's starting weights (step 0), or a crash between the checkpoint and the registration
        t0 = time.time()
        v = f"{prefix}.{state['step']}"
        convert_and_register(args, client, ck, v, state["run_id"])
        state.update(registered=True, version=v)
        save_state()
        probes = probe_version(args, client, v, problems) if args.sync_probe else 0
        why = "the starting weights (step 1's behaviour policy)" if state["step"] == 0 else "after a crash"
        log(f"rl: registered {v}: {why} ({time.time() - t0:.1f}s)")
        logf.write(json.dumps(dict(step=state["step"], version=v, registered=why, sync_probes=probes,
                                   time=dict(weight_sync=round(time.time() - t0, 2)))) + "\n")
        logf.flush()

    while state["step"] < args.steps:
        step = state["step"] + 1
        t0 = time.time()
        recs_path = os.path.join(out, f"records-{step}.jsonl")
        pend = state.get("pending")
        if not pend or pend.get("step") != step:
            body, n = rollout_request(args, problems, state["problem_offset"], step, state["version"])
            rid = client.request("POST", "/v1/rollouts", body)["id"]
            pend = dict(step=step, rollout=rid, cursor=None, n=n)
            if os.path.exists(recs_path):
                os.remove(recs_path)
            state["pending"] = pend
            save_state()
        wait_rollout(client, pend["rollout"], args.rollout_timeout)

        def on_page(recs, cursor):
            with open(recs_path, "a") as f:
                for r in recs:
                    f.write(json.dumps(r) + "\n")
                f.flush()
                os.fsync(f.fileno())
            pend["cursor"] = cursor
            save_state()
            crash_point("after-page")  # the page is on disk, not yet acknowledged

        read_stream(client, pend["rollout"], f"learner-{state['run_id']}", pend["cursor"], on_page, args.rollout_timeout)
        seen = {}
        for r in train.read_jsonl(recs_path) if os.path.exists(recs_path) else []:
            seen[(r["groupIndex"], r["sampleIndex"])] = r  # a re-delivered page after a crash counts once
        records = list(seen.values())
        if not records:
            raise FarmError(f"rollout {pend['rollout']} delivered no trajectories")
        t1 = time.time()
        stats = rollout_stats(records)
        rows, adv, correct = record_rows(records, vocab)
        if rows:
            model.train()
            lstats = learn_step(args, model, ref, opt, rows, adv, correct, vocab)
        else:
            lstats = {"updates": 0, "trained_samples": 0, "skipped": "no kept group (every group filtered)"}
        t2 = time.time()
        state.update(step=step, registered=False, pending=None, problem_offset=state["problem_offset"] + pend["n"])
        save_checkpoint(out, model, opt, vocab, tok, {"step": step, "problem_offset": state["problem_offset"]})
        crash_point("after-checkpoint")  # the step's weights are saved, state.json still says the step is pending
        save_state()
        v = f"{prefix}.{step}"
        reg = convert_and_register(args, client, ck, v, state["run_id"])
        state.update(registered=True, version=v)
        save_state()
        probes = probe_version(args, client, v, problems) if args.sync_probe else 0
        t3 = time.time()
        line = dict(step=step, rollout=pend["rollout"], **stats, **lstats, version=v, version_seq=reg.get("seq"), sync_probes=probes,
                    time=dict(rollout=round(t1 - t0, 2), learn=round(t2 - t1, 2), weight_sync=round(t3 - t2, 2)))
        logf.write(json.dumps(line) + "\n")
        logf.flush()
        log(json.dumps(line))
        os.remove(recs_path)
    logf.close()
    print(json.dumps(dict(run=state["run_id"], steps=state["step"], version=state["version"], out=out)))
    return 0


# ---------------------------------------------------------------- distillation


def download_dataset(client, dataset, dest):
    """GET /v1/distill/:id and its files (tokenizer.json, distill.json, <family>-train.jsonl) into dest."""
    view = client.request("GET", f"/v1/distill/{dataset}")
    if view.get("status") != "completed":
        raise FarmError(f"distillation dataset {dataset} is {view.get('status')}, not completed ({view.get('failed_reason') or ''})")
    os.makedirs(dest, exist_ok=True)
    for name in view["result"]["files"]:
        data = client.request("GET", f"/v1/distill/{dataset}/files/{name}", raw=True)
        with open(os.path.join(dest, name + ".tmp"), "wb") as f:
            f.write(data)
        os.replace(os.path.join(dest, name + ".tmp"), os.path.join(dest, name))
    return view


def load_distill_rows(data_dir, vocab):
    """(prompt_ids, teacher response ids ending with EOS) for every row of every <family>-train.jsonl."""
    rows = []
    for name in sorted(os.listdir(data_dir)):
        if not name.endswith("-train.jsonl"):
            continue
        for r in train.read_jsonl(os.path.join(data_dir, name)):
            t = r.get("teacher") or {}
            if t.get("tokenIds") and t.get("endedWithEos") and t["tokenIds"][-1] == vocab.eos:
                resp = list(t["tokenIds"])  # the teacher's own ids, EOS included
            else:
                resp = vocab.encode(r["solution"]) + [vocab.eos]  # ended on a stop string: prompt + solution + EOS
            rows.append((vocab.encode(r["prompt"]), resp))
    if not rows:
        raise FarmError(f"{data_dir} holds no <family>-train.jsonl rows (is it a /v1/distill dataset?)")
    return rows


def cmd_distill(args):
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    client = Client(args.gateway, args.key, args.http_timeout)
    data = os.path.join(out, "dataset")
    if args.dataset:
        download_dataset(client, args.dataset, data)
    elif args.dataset_dir:
        data = args.dataset_dir
    meta = json.load(open(os.path.join(data, "distill.json"))) if os.path.exists(os.path.join(data, "distill.json")) else {}
    cf = meta.get("certaintyForcing", {})
    mask_p = args.mask_prob if args.mask_prob is not None else cf.get("maskProb", 0.5)
    temp = args.entropy_temperature if args.entropy_temperature is not None else cf.get("entropyTemperature", losses.CF_TEMPERATURE)
    lam = args.entropy_weight if args.entropy_weight is not None else losses.CF_ENTROPY_WEIGHT
    state = load_state(out)
    if state is None:
        hf = prepare_init(args, os.path.join(out, "init"))
        model, _ = train.load_model(hf, args.device)
        vocab = train.Vocab(os.path.join(hf, "tokenizer.json"))
        opt = make_optimizer(model, args.lr)
        state = dict(run_id=secrets.token_hex(3), step=0, registered=False, version=None)
        save_checkpoint(out, model, opt, vocab, os.path.join(hf, "tokenizer.json"), None)
        write_json_atomic(os.path.join(out, "state.json"), state)
    ck = os.path.join(out, "ckpt")
    tok = os.path.join(ck, "tokenizer.json")
    vocab = train.Vocab(tok)
    prog = json.load(open(os.path.join(ck, "progress.json"))) if os.path.exists(os.path.join(ck, "progress.json")) else {}
    if prog.get("step", 0) > state["step"]:  # crashed between the checkpoint and state.json
        state["step"] = prog["step"]
    dvocab = train.Vocab(os.path.join(data, "tokenizer.json"))
    if dvocab.vocab != vocab.vocab:
        raise FarmError("the dataset's tokenizer.json differs from the model's: distil into the model that served as the teacher (or one with its vocabulary)")
    model, _ = train.load_model(ck, args.device)
    opt = make_optimizer(model, args.lr)
    if state["step"] < args.steps:  # a finished run (registering elsewhere) needs no moments, which may come from a GPU
        opt.load_state_dict(torch.load(os.path.join(ck, "optimizer.pt"), map_location=args.device))
    rows = load_distill_rows(data, vocab)
    log(f"distill: {len(rows)} teacher rows, mask p {mask_p}, T {temp}, lambda {lam}, steps {state['step']}..{args.steps}")
    logf = open(os.path.join(out, "log.jsonl"), "a")
    rng = random.Random(args.seed * 7919 + state["step"])
    gen = torch.Generator().manual_seed(args.seed * 104729 + state["step"])
    model.train()
    t0 = time.time()
    while state["step"] < args.steps:
        batch = [rows[rng.randrange(len(rows))] for _ in range(args.batch)]
        loss, st = blockdiff.certainty_forcing_batch(model, batch, vocab, gen, p=mask_p, temperature=temp, entropy_weight=lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        state["step"] += 1
        if state["step"] % args.log_every == 0 or state["step"] == args.steps:
            line = dict(step=state["step"], **{k: round(v, 5) for k, v in st.items()}, seconds=round(time.time() - t0, 1))
            logf.write(json.dumps(line) + "\n")
            logf.flush()
            log(json.dumps(line))
        if state["step"] % args.save_every == 0 or state["step"] == args.steps:
            save_checkpoint(out, model, opt, vocab, tok, {"step": state["step"]})
            write_json_atomic(os.path.join(out, "state.json"), state)
    version = args.version or f"distill-{state['run_id']}.{state['step']}"
    if not args.register:
        log(f"distill: trained {state['step']} steps into {ck}; not registered (--no-register): rerun the same command "
            "without --no-register where the gateway and the dllm-farm CLI are reachable to convert and register it")
        print(json.dumps(dict(run=state["run_id"], steps=state["step"], version=None, out=out)))
        return 0
    if not state.get("registered"):
        reg = convert_and_register(args, client, ck, version, state["run_id"])
        state.update(registered=True, version=version)
        write_json_atomic(os.path.join(out, "state.json"), state)
        log(f"distill: registered {args.model} version {version} (seq {reg.get('seq')})")
    print(json.dumps(dict(run=state["run_id"], steps=state["step"], version=state["version"], out=out)))
    return 0


# ---------------------------------------------------------------- CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("rl", "distill"):
        p = sub.add_parser(name)
        p.add_argument("--gateway", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
        p.add_argument("--key", default=os.environ.get("DLLM_API_KEY"), help="API key (default $DLLM_API_KEY); needs models:write to register")
        p.add_argument("--model", required=True, help="served model name (new versions are registered under it)")
        p.add_argument("--init", help="starting weights: a dllm-farm model dir or an HF checkpoint dir (ignored when --out holds a run)")
        p.add_argument("--out", required=True, help="work dir: checkpoint, state.json, log.jsonl (resumes from it)")
        p.add_argument("--model-root", required=True, help="where new version directories are written (a volume the gateway and workers read)")
        p.add_argument("--steps", type=int, required=True)
        p.add_argument("--cli", default=os.environ.get("DLLM_CLI"), help="dllm-farm CLI command line (default: bin/dllm-farm of this repo)")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--grad-clip", type=float, default=1.0)
        p.add_argument("--http-timeout", type=float, default=60.0)
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        if name == "rl":
            p.add_argument("--lr", type=float, default=1e-6, help="AdamW lr (LightningRL: 1e-6)")
            p.add_argument("--group-size", type=int, default=8)
            p.add_argument("--groups", type=int, default=8, help="kept groups wanted per step (targetGroups)")
            p.add_argument("--reserve", type=int, default=8, help="extra prompts for dynamic sampling (0 turns it off)")
            p.add_argument("--temperature", type=float, default=1.0)
            p.add_argument("--policy", default="fast-dllm-v2")
            p.add_argument("--threshold", type=float, default=0.9)
            p.add_argument("--max-new", type=int, default=64)
            p.add_argument("--sub-block-size", type=int, default=None,
                           help="rollout sub-block length (default: the model's decode_defaults, tiny-dllm 32 = whole blocks, else the farm's 8; LightningRL decodes whole 32-token blocks, where TPF has room to grow)")
            p.add_argument("--families", nargs="+", default=["arith", "string"])
            p.add_argument("--problems", nargs="+", help="train-split problem JSONL files instead of `dllm-farm tasks`")
            p.add_argument("--n-problems", type=int, default=20000)
            p.add_argument("--minibatch", type=int, default=16)
            p.add_argument("--ppo-epochs", type=int, default=1)
            p.add_argument("--clip-eps", type=float, default=losses.PPO_EPS)
            p.add_argument("--kl-beta", type=float, default=losses.KL_BETA)
            p.add_argument("--nll-weight", type=float, default=losses.NLL_WEIGHT)
            p.add_argument("--max-staleness", type=int, default=None, help="maxStaleness bound; default: samples must come from the last registered version")
            p.add_argument("--version-prefix", help="versions are <prefix>.<step> (default rl-<run id>)")
            p.add_argument("--rollout-timeout", type=float, default=900)
            p.add_argument("--sync-timeout", type=float, default=120)
            p.add_argument("--probe-tokens", type=int, default=8)
            p.add_argument("--no-sync-probe", dest="sync_probe", action="store_false", help="skip waiting for the workers to serve each new version")
        else:
            p.add_argument("--dataset", help="a /v1/distill job id (downloaded through the API)")
            p.add_argument("--dataset-dir", help="an already downloaded dataset directory")
            p.add_argument("--lr", type=float, default=1e-4)
            p.add_argument("--batch", type=int, default=32)
            p.add_argument("--mask-prob", type=float, default=None, help="default: the dataset's certaintyForcing.maskProb (0.5)")
            p.add_argument("--entropy-weight", type=float, default=None, help=f"lambda (default {losses.CF_ENTROPY_WEIGHT}, dParallel's trainer)")
            p.add_argument("--entropy-temperature", type=float, default=None, help="default: the dataset's (0.5)")
            p.add_argument("--version", help="version to register (default distill-<run id>.<steps>)")
            p.add_argument("--log-every", type=int, default=10)
            p.add_argument("--save-every", type=int, default=100)
            p.add_argument("--no-register", dest="register", action="store_false",
                           help="train only (e.g. on a GPU machine that cannot reach the farm); a later run with the same --out registers")
    args = ap.parse_args(argv)
    if not args.key:
        ap.error("--key (or DLLM_API_KEY) is required")
    if args.cmd == "distill" and not (args.dataset or args.dataset_dir):
        ap.error("distill needs --dataset ID or --dataset-dir DIR")
    torch.set_num_threads(int(os.environ.get("TRAIN_THREADS", "1")))
    torch.manual_seed(args.seed)
    try:
        if not load_state(os.path.abspath(args.out)) and not args.init:
            raise FarmError("--init is required for a new run (no state.json in --out)")
        return cmd_rl(args) if args.cmd == "rl" else cmd_distill(args)
    except FarmError as e:
        log(f"learn.py {args.cmd}: error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
