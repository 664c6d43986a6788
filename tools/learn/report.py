#!/usr/bin/env python3
"""The reproduction report (issue 10 item 5): evaluates models over a threshold sweep with `dllm-farm eval` on
held-out problems and writes docs/REPRODUCTION.md (tables, one verdict sentence per seed finding) plus PNG plots.
Standard library only (no torch, no matplotlib: PNGs come from a tiny writer below, axes without text; the
markdown says what each colour and axis is).

  report.py --model base=models/tiny-dllm [--model distilled=DIR --model rl=DIR --model rl-after-distill=DIR]
            [--ar models/tiny-ar] [--n 500] [--families arith string] [--thresholds 0.5 ... 0.95]
            [--entropy-thresholds ...] [--out docs/REPRODUCTION.md] [--plots docs/reproduction] [--cli CMD]

Each (model, policy, threshold, family) point is one `dllm-farm eval --json` run: accuracy, TPF (tokens per
forward), tokens/s. The tiny-ar AR baseline runs in the same invocation, so tokens/s ratios compare like with like.
Never part of the tests or CI beyond the writer's unit test: a full run takes hours on CPU."""
import argparse
import json
import os
import struct
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from farm import FarmError, run_cli  # noqa: E402

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]
COLOR_NAMES = ["blue", "orange", "green", "red", "purple", "brown", "pink", "grey"]


# ---------------------------------------------------------------- PNG


def png_bytes(width, height, pixels):
    """pixels: bytearray of width*height*3 RGB -> PNG file bytes (8-bit truecolour, no filter, zlib)."""
    if len(pixels) != width * height * 3:
        raise ValueError(f"expected {width * height * 3} bytes of RGB, got {len(pixels)}")
    raw = b"".join(b"\x00" + bytes(pixels[y * width * 3 : (y + 1) * width * 3]) for y in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


class Canvas:
    """A white RGB raster with lines, squares and a frame; (0, 0) is the top left."""

    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray([255]) * (w * h * 3)

    def set(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i : i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c, width=1):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            x = round(x0 + (x1 - x0) * i / n)
            y = round(y0 + (y1 - y0) * i / n)
            for dx in range(-(width // 2), width // 2 + 1):
                for dy in range(-(width // 2), width // 2 + 1):
                    self.set(x + dx, y + dy, c)

    def square(self, x, y, r, c):
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                self.set(x + dx, y + dy, c)

    def png(self):
        return png_bytes(self.w, self.h, self.px)


def scatter_plot(series, x_range, y_range, w=640, h=420, margin=40):
    """series: [(colour, [(x, y), ...])] drawn as lines through points sorted by x, inside a frame with 5 ticks per
    axis. -> PNG bytes."""
    cv = Canvas(w, h)
    (x0, x1), (y0, y1) = x_range, y_range
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    sx = lambda x: round(margin + (x - x0) / (x1 - x0) * (w - 2 * margin))  # noqa: E731
    sy = lambda y: round(h - margin - (y - y0) / (y1 - y0) * (h - 2 * margin))  # noqa: E731
    black, light = (0, 0, 0), (225, 225, 225)
    for i in range(6):
        gx = margin + i * (w - 2 * margin) // 5
        gy = margin + i * (h - 2 * margin) // 5
        cv.line(gx, margin, gx, h - margin, light)
        cv.line(margin, gy, w - margin, gy, light)
        cv.line(gx, h - margin, gx, h - margin + 5, black)
        cv.line(margin - 5, gy, margin, gy, black)
    cv.line(margin, h - margin, w - margin, h - margin, black)
    cv.line(margin, margin, margin, h - margin, black)
    for colour, pts in series:
        pts = sorted(pts)
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            cv.line(sx(ax), sy(ay), sx(bx), sy(by), colour, 2)
        for x, y in pts:
            cv.square(sx(x), sy(y), 3, colour)
    return cv.png()


# ---------------------------------------------------------------- evaluation


def evaluate(cli, model_dir, family, n, policy, threshold, seed, batch=1, sub_block=None):
    """One `dllm-farm eval --json` run (greedy; batch 1 by default, the issue's tokens/s setting); sub_block: the
    decoder's sub-block length (None: the engine default, 8). -> its summary."""
    args = ["eval", "--model", model_dir, "--task", family, "--n", str(n), "--seed", str(seed), "--json", "--policy", policy, "--batch", str(batch)]
    if sub_block is not None and policy != "ar":
        args += ["--sub-block-size", str(sub_block)]
    if policy == "fast-dllm-v2":
        args += ["--threshold", str(threshold)]
    elif policy == "entropy":
        args += ["--entropy-threshold", str(threshold)]
    out = run_cli(cli, args, f"evaluating {model_dir} ({family}, {policy} {threshold})", timeout=24 * 3600)
    return json.loads(out.strip().splitlines()[-1])


def verdicts(rows, families):
    """One sentence per seed finding from the measured rows (the issue's targets decide reproduced / partly / refuted).
    Rows may carry `sub_block` (the decoder's sub-block length): Fast-dLLM v2 parity is judged at the smallest one
    measured (the engine default, 8); dParallel and LightningRL get one sentence per sub-block length, since an
    8-slot sub-block caps TPF (at least one forward per sub-block) and can hide a gain that whole blocks show."""
    sbs = sorted({r.get("sub_block") for r in rows if r["policy"] != "ar"}, key=lambda x: (x is not None, x or 0))
    default_sb = sbs[0] if sbs else None

    def pick(model, policy, fam, thr=None, sb="default"):
        sb = default_sb if sb == "default" else sb
        c = [r for r in rows if r["model"] == model and r["policy"] == policy and r["family"] == fam and (thr is None or r["threshold"] == thr)
             and (policy == "ar" or r.get("sub_block") == sb)]
        return c

    def tag(sb):
        return "" if len(sbs) < 2 or sb is None else f" (sub-block {sb})"

    out = []
    # Fast-dLLM v2: the adapted dLLM at its default decoding (fast-dllm-v2 @ 0.9) matches its AR parent within 2 points
    gaps = []
    for fam in families:
        b, a = pick("base", "fast-dllm-v2", fam, 0.9), pick("ar", "ar", fam)
        if b and a:
            gaps.append((fam, b[0]["accuracy"], a[0]["accuracy"], b[0]["tokens_per_second"] / max(1e-9, a[0]["tokens_per_second"])))
    if gaps:
        # parity = not more than 2 points below the AR parent (a dLLM that beats its parent does not refute it)
        ok = all(x[1] - x[2] >= -0.02 for x in gaps)
        close = all(x[1] - x[2] >= -0.05 for x in gaps)
        word = "reproduced" if ok else "partly reproduced" if close else "refuted"
        detail = "; ".join(f"{f}: {b * 100:.1f}% vs AR {a * 100:.1f}% at {s:.2f}x the AR tokens/s" for f, b, a, s in gaps)
        out.append(f"**Fast-dLLM v2** (adapted dLLM at parity with its AR parent): {word} — {detail}.")
    else:
        out.append("**Fast-dLLM v2**: not measured (needs `--model base=...` and `--ar`).")
    # dParallel: >= 2x fewer forwards per answer at equal accuracy (entropy policy), distilled vs base
    for sb in sbs:
        out += _dparallel(pick, families, sb, tag(sb))
    if not any(v.startswith("**dParallel**") for v in out):
        out.append("**dParallel**: not measured (needs `--model distilled=...` with the entropy sweep).")
    # LightningRL: TPF >= 1.3x the starting model's at the same threshold, accuracy within 1 point
    for sb in sbs:
        out += _lightningrl(pick, families, sb, tag(sb))
        # RL after distillation, judged against its own starting point (the distilled model)
        out += _lightningrl(pick, families, sb, tag(sb), rl="rl-after-distill", start="distilled", title="LightningRL after distillation")
    if not any(v.startswith("**LightningRL**") for v in out):
        out.append("**LightningRL**: not measured (needs `--model rl=...`).")
    return out


def _dparallel(pick, families, sb, tag):
    lines = []
    for fam in families:
        base = pick("base", "entropy", fam, sb=sb)
        dist = pick("distilled", "entropy", fam, sb=sb)
        if not base or not dist:
            continue
        best_base = max(base, key=lambda r: r["accuracy"])
        eq = [r for r in dist if r["accuracy"] >= best_base["accuracy"] - 0.01]
        # no distilled point within 1 point of the base's best accuracy: measured, and no gain at equal accuracy
        d = max(eq, key=lambda r: r["tpf"]) if eq else max(dist, key=lambda r: r["accuracy"])
        lines.append((fam, d["tpf"] / max(1e-9, best_base["tpf"]) if eq else 0.0, d, best_base))
    if lines:
        # reproduced: >= 2x on every family; partly: a real gain (> 1.2x) on at least one
        word = "reproduced" if min(x[1] for x in lines) >= 2 else "partly reproduced" if max(x[1] for x in lines) > 1.2 else "refuted"
        detail = "; ".join(
            (f"{f}: {r:.2f}x fewer forwards per token ({d['accuracy'] * 100:.1f}% at TPF {d['tpf']:.2f} vs {b['accuracy'] * 100:.1f}% at TPF {b['tpf']:.2f})" if r
             else f"{f}: no distilled point within 1 point of the base's best {b['accuracy'] * 100:.1f}% (at most {d['accuracy'] * 100:.1f}%, TPF {d['tpf']:.2f})")
            for f, r, d, b in lines)
        return [f"**dParallel**{tag} (certainty forcing cuts decoding steps at equal accuracy): {word} — {detail}."]
    return []


def _lightningrl(pick, families, sb, tag, rl="rl", start="base", title="LightningRL"):
    lines = []
    for fam in families:
        for r in pick(rl, "fast-dllm-v2", fam, sb=sb):
            b = pick(start, "fast-dllm-v2", fam, r["threshold"], sb=sb)
            if b:
                lines.append((fam, r["threshold"], r["tpf"] / max(1e-9, b[0]["tpf"]), r["accuracy"] - b[0]["accuracy"]))
    if lines:
        good = [x for x in lines if x[2] >= 1.3 and x[3] >= -0.01]
        some = [x for x in lines if x[2] > 1.05 and x[3] >= -0.01]
        word = "reproduced" if good else "partly reproduced" if some else "refuted"
        at9 = [x for x in lines if x[1] == 0.9] or lines
        detail = "; ".join(f"{f} @ {t}: TPF x{q:.2f}, accuracy {d * 100:+.1f} points" for f, t, q, d in at9)
        # the same question at equal accuracy: the RL model's fastest threshold that is within 1 point of the base at 0.9
        eq = []
        for fam in families:
            b = pick(start, "fast-dllm-v2", fam, 0.9, sb=sb)
            ok = [r for r in pick(rl, "fast-dllm-v2", fam, sb=sb) if b and r["accuracy"] >= b[0]["accuracy"] - 0.01]
            if b:
                best = max(ok, key=lambda r: r["tpf"]) if ok else None
                eq.append(f"{fam}: TPF x{best['tpf'] / max(1e-9, b[0]['tpf']):.2f} at threshold {best['threshold']} ({best['accuracy'] * 100:.1f}%)" if best
                          else f"{fam}: no threshold within 1 point of the base's {b[0]['accuracy'] * 100:.1f}%")
        if eq:
            detail += f"; at equal accuracy (vs the {start} model at 0.9): " + "; ".join(eq)
        return [f"**{title}**{tag} (GRPO with a TPF reward raises parallelism at equal accuracy): {word} — {detail}."]
    return []


def write_report(rows, families, models, ar, plots_dir, out_path, meta):
    """docs/REPRODUCTION.md: setup, one table per family, the plots with their legend, the verdicts. -> plot paths."""
    os.makedirs(plots_dir, exist_ok=True)
    series_keys = sorted({(r["model"], r["policy"], r.get("sub_block") or 0) for r in rows if r["policy"] != "ar"})
    md = ["# Reproduction report", "", f"Made by `{meta['command']}` on {meta['date']} ({meta['seconds']:.0f} s).", "",
          f"Held-out problems: {meta['n']} per family (`dllm-farm eval`, test split, seed {meta['seed']}), greedy decoding, "
          f"{meta['batch']} request(s) in flight.", "",
          "Models: " + ", ".join(f"`{k}` = `{v}`" for k, v in models) + (f", AR baseline `ar` = `{ar}`" if ar else "") + ".", ""]
    md += [x for n in meta.get("notes", []) for x in (n, "")]
    md += ["## Findings", ""] + [f"- {v}" for v in verdicts(rows, families)] + [""]
    plots = []
    for fam in families:
        fr = [r for r in rows if r["family"] == fam]
        md += [f"## {fam}", "", "| model | policy | sub-block | threshold | accuracy | TPF | tokens/s |", "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in fr:
            thr = "-" if r["threshold"] is None else r["threshold"]
            sb = r.get("sub_block") or ("-" if r["policy"] == "ar" else "8")
            md.append(f"| {r['model']} | {r['policy']} | {sb} | {thr} | {r['accuracy'] * 100:.1f}% | {r['tpf']:.2f} | {r['tokens_per_second']:.1f} |")
        for sb in sorted({r.get("sub_block") or 0 for r in fr if r["policy"] != "ar"}):
            # one plot per sub-block length: at most 8 series (colours) each, and like compared with like
            pts = [r for r in fr if r["policy"] != "ar" and (r.get("sub_block") or 0) == sb]
            keys = [k for k in series_keys if k[2] == sb]
            colour = {k: i % len(COLORS) for i, k in enumerate(keys)}
            xr = (max(0.0, min(r["tpf"] for r in pts) - 0.5), max(r["tpf"] for r in pts) + 0.25)
            yr = (min(r["accuracy"] for r in pts) - 0.02, 1.0)
            key = lambda r: (r["model"], r["policy"], r.get("sub_block") or 0)  # noqa: E731
            series = [(COLORS[colour[k]], [(r["tpf"], r["accuracy"]) for r in pts if key(r) == k]) for k in keys]
            name = f"{fam}-accuracy-vs-tpf.png" if not sb else f"{fam}-sub-block-{sb}-accuracy-vs-tpf.png"
            with open(os.path.join(plots_dir, name), "wb") as f:
                f.write(scatter_plot([x for x in series if x[1]], xr, yr))
            plots.append(os.path.join(plots_dir, name))
            rel = os.path.relpath(os.path.join(plots_dir, name), os.path.dirname(os.path.abspath(out_path)))
            legend = ", ".join(f"{COLOR_NAMES[colour[k]]} = {k[0]} / {k[1]}" for k in keys)
            what = f"{fam}, sub-block {sb}" if sb else fam
            md += ["", f"![{what}: accuracy against TPF]({rel})", "",
                   f"{what}. x: TPF from {xr[0]:.1f} to {xr[1]:.2f} (5 grid steps); y: accuracy from {yr[0] * 100:.0f}% to 100%. {legend}. "
                   "Each point is one threshold of the sweep.", ""]
        md.append("")
    with open(out_path, "w") as f:
        f.write("\n".join(md).rstrip() + "\n")
    return plots


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="label=model-dir; labels base, distilled, rl, rl-after-distill get verdicts")
    ap.add_argument("--ar", help="the AR parent (tiny-ar) for the tokens/s and parity comparison")
    ap.add_argument("--families", nargs="+", default=["arith", "string"])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    ap.add_argument("--entropy-thresholds", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.45, 0.6, 0.8])
    ap.add_argument("--policies", nargs="+", default=["fast-dllm-v2", "entropy"])
    ap.add_argument("--out", default="docs/REPRODUCTION.md")
    ap.add_argument("--plots", default="docs/reproduction")
    ap.add_argument("--batch", type=int, default=1, help="requests in flight per eval (1: the issue's batch-1 tokens/s)")
    ap.add_argument("--sub-block-sizes", type=int, nargs="+", default=[8],
                    help="decoder sub-block lengths to sweep for every dLLM policy (8: the engine default; 32: whole blocks, as LightningRL decodes)")
    ap.add_argument("--note", action="append", default=[], help="a paragraph for the report's head (what the models are, how they were made)")
    ap.add_argument("--cli", default=os.environ.get("DLLM_CLI"))
    ap.add_argument("--merge-into", help="a JSON this script wrote: keep its rows (except those of the --model labels evaluated now) and write the union")
    ap.add_argument("--from-json", help="rewrite the report and plots from a JSON this script wrote (no evaluation)")
    argv = sys.argv[1:] if argv is None else argv
    if "--from-json" in argv:  # --model is only needed to evaluate
        i = argv.index("--from-json")
        return rerender(argv[i + 1], ap.parse_known_args(argv)[0])
    args = ap.parse_args(argv)
    if not args.model:
        ap.error("--model label=dir is required (at least one)")
    models = []
    for m in args.model:
        if "=" not in m:
            ap.error(f"--model takes label=dir, got '{m}'")
        label, d = m.split("=", 1)
        if not os.path.exists(os.path.join(d, "dllm.json")):
            ap.error(f"--model {label}: {d} is not a dllm-farm model directory (no dllm.json)")
        models.append((label, d))
    t0 = time.time()
    rows = []
    try:
        for fam in args.families:
            if args.ar:
                r = evaluate(args.cli, args.ar, fam, args.n, "ar", None, args.seed, args.batch)
                rows.append(dict(model="ar", policy="ar", threshold=None, family=fam, **{k: r[k] for k in ("accuracy", "tpf", "tokens_per_second")}))
            for label, d in models:
                for sb in args.sub_block_sizes:
                    for pol in args.policies:
                        for thr in (args.thresholds if pol == "fast-dllm-v2" else args.entropy_thresholds):
                            r = evaluate(args.cli, d, fam, args.n, pol, thr, args.seed, args.batch, sb)
                            rows.append(dict(model=label, policy=pol, sub_block=sb, threshold=thr, family=fam,
                                             **{k: r[k] for k in ("accuracy", "tpf", "tokens_per_second")}))
                            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    except FarmError as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        return 2
    meta = dict(command=command_line(argv), models=models, ar=args.ar, families=args.families, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                seconds=time.time() - t0, n=args.n, seed=args.seed, batch=args.batch, notes=args.note)
    if args.merge_into:
        # e.g. a model trained after the first run: evaluate only it, keep the rest (their command is kept too)
        old = json.load(open(args.merge_into))
        labels = {label for label, _ in models}
        rows = [r for r in old["rows"] if r["model"] not in labels and not (r["model"] == "ar" and args.ar)] + rows
        om = old["meta"]
        models = [tuple(m) for m in om.get("models", []) if m[0] not in labels] + models
        meta.update(command=om["command"] + "`, then `" + meta["command"], seconds=om["seconds"] + meta["seconds"], notes=om.get("notes", []) + meta["notes"],
                    models=models, ar=args.ar or om.get("ar"), families=om.get("families", args.families))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    plots = write_report(rows, meta.get("families", args.families), models, meta.get("ar", args.ar), args.plots, args.out, meta)
    print(json.dumps(dict(out=args.out, plots=plots, rows=len(rows))))
    return 0


def command_line(argv):
    """The command as the report quotes it: each --note's text is replaced by '...' (the notes are printed below it)."""
    out, skip = [], False
    for a in argv:
        out.append("..." if skip else (f"'{a}'" if " " in a else a))
        skip = a == "--note"
    return "tools/learn/report.py " + " ".join(out)


def rerender(path, args):
    """--from-json: the markdown and plots again from the measured rows (e.g. after a change to the writer)."""
    data = json.load(open(path))
    meta = data["meta"]
    models = [tuple(m) for m in meta.get("models", [])]
    plots = write_report(data["rows"], meta.get("families", args.families), models, meta.get("ar"), args.plots, args.out, meta)
    print(json.dumps(dict(out=args.out, plots=plots, rows=len(data["rows"]), rerendered=path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
