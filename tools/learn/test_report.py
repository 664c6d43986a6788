"""The report's PNG writer and verdicts (tools/learn/report.py), standard library only."""
import os
import struct
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402


def chunks(png):
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    i, out = 8, []
    while i < len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        tag, data = png[i + 4 : i + 8], png[i + 8 : i + 8 + n]
        (crc,) = struct.unpack(">I", png[i + 8 + n : i + 12 + n])
        out.append((tag, data, crc == (zlib.crc32(tag + data) & 0xFFFFFFFF)))
        i += 12 + n
    return out


class PngTest(unittest.TestCase):
    def test_two_by_one(self):
        png = report.png_bytes(2, 1, bytearray([255, 0, 0, 0, 0, 255]))
        cs = chunks(png)
        self.assertEqual([c[0] for c in cs], [b"IHDR", b"IDAT", b"IEND"])
        self.assertTrue(all(c[2] for c in cs))
        self.assertEqual(struct.unpack(">IIBBBBB", cs[0][1]), (2, 1, 8, 2, 0, 0, 0))
        self.assertEqual(zlib.decompress(cs[1][1]), b"\x00\xff\x00\x00\x00\x00\xff")  # filter byte 0, red, blue

    def test_plot_draws_the_series_colour(self):
        png = report.scatter_plot([((214, 39, 40), [(1.0, 0.5), (2.0, 0.9)])], (0, 3), (0, 1), w=100, h=80, margin=10)
        raw = zlib.decompress(chunks(png)[1][1])
        self.assertIn(bytes([214, 39, 40]), raw)
        with self.assertRaises(ValueError):
            report.png_bytes(2, 2, bytearray(3))


class VerdictTest(unittest.TestCase):
    def row(self, model, policy, thr, acc, tpf, tps=100.0, fam="arith"):
        return dict(model=model, policy=policy, threshold=thr, family=fam, accuracy=acc, tpf=tpf, tokens_per_second=tps)

    def test_verdicts(self):
        rows = [
            self.row("ar", "ar", None, 0.99, 1.0, 100.0),
            self.row("base", "fast-dllm-v2", 0.9, 0.98, 4.0, 250.0),
            self.row("rl", "fast-dllm-v2", 0.9, 0.975, 5.6),
            self.row("base", "entropy", 0.5, 0.9, 3.0),
            self.row("distilled", "entropy", 0.5, 0.895, 6.3),
        ]
        v = report.verdicts(rows, ["arith"])
        self.assertIn("reproduced — arith: 98.0% vs AR 99.0% at 2.50x", v[0])
        self.assertIn("**dParallel** (certainty forcing cuts decoding steps at equal accuracy): reproduced — arith: 2.10x", v[1])
        self.assertIn("**LightningRL** (GRPO with a TPF reward raises parallelism at equal accuracy): reproduced — arith @ 0.9: TPF x1.40, accuracy -0.5", v[2])
        rows[2]["accuracy"] = 0.9  # 8 points lost: not at equal accuracy
        self.assertIn("refuted", report.verdicts(rows, ["arith"])[2])
        self.assertIn("not measured", report.verdicts(rows[:2], ["arith"])[1])


    def test_equal_accuracy_clauses(self):
        rows = [
            self.row("base", "fast-dllm-v2", 0.9, 0.90, 4.0),
            self.row("rl", "fast-dllm-v2", 0.9, 0.85, 5.0),  # faster but 5 points worse at the same threshold
            self.row("rl", "fast-dllm-v2", 0.95, 0.895, 4.6),  # within 1 point at a higher threshold: x1.15 at equal accuracy
            self.row("base", "entropy", 0.5, 0.9, 3.0),
            self.row("distilled", "entropy", 0.5, 0.80, 6.0),  # never within 1 point: measured, refuted
        ]
        v = report.verdicts(rows, ["arith"])
        dp = [x for x in v if x.startswith("**dParallel**")][0]
        self.assertIn("refuted — arith: no distilled point within 1 point of the base's best 90.0% (at most 80.0%, TPF 6.00)", dp)
        rl = [x for x in v if x.startswith("**LightningRL**")][0]
        self.assertIn("refuted — arith @ 0.9: TPF x1.25, accuracy -5.0 points", rl)
        self.assertIn("at equal accuracy (vs the base model at 0.9): arith: TPF x1.15 at threshold 0.95 (89.5%)", rl)

    def test_dparallel_partly_when_one_family_gains(self):
        rows = [self.row("base", "entropy", 0.5, 0.88, 4.18), self.row("distilled", "entropy", 0.5, 0.874, 4.90),
                self.row("base", "entropy", 0.5, 0.60, 2.58, fam="string"), self.row("distilled", "entropy", 0.5, 0.594, 4.33, fam="string")]
        dp = [x for x in report.verdicts(rows, ["arith", "string"]) if x.startswith("**dParallel**")][0]
        self.assertIn("partly reproduced — arith: 1.17x", dp)

    def test_rl_after_distillation_is_judged_against_the_distilled_model(self):
        rows = [self.row("distilled", "fast-dllm-v2", 0.9, 0.90, 4.0), self.row("rl-after-distill", "fast-dllm-v2", 0.9, 0.895, 5.4)]
        v = [x for x in report.verdicts(rows, ["arith"]) if x.startswith("**LightningRL after distillation**")]
        self.assertEqual(len(v), 1)
        self.assertIn("reproduced — arith @ 0.9: TPF x1.35, accuracy -0.5 points; at equal accuracy (vs the distilled model at 0.9)", v[0])

    def test_parity_is_one_sided(self):
        # 10 points above the AR parent is parity (not a refutation); 3 points below is only partly
        rows = [self.row("ar", "ar", None, 0.64, 1.0), self.row("base", "fast-dllm-v2", 0.9, 0.74, 3.3)]
        self.assertIn("**Fast-dLLM v2** (adapted dLLM at parity with its AR parent): reproduced", report.verdicts(rows, ["arith"])[0])
        rows[1]["accuracy"] = 0.61
        self.assertIn("partly reproduced", report.verdicts(rows, ["arith"])[0])

    def test_command_line_hides_note_text(self):
        self.assertEqual(report.command_line(["--model", "base=m", "--note", "a long note", "--n", "5"]),
                         "tools/learn/report.py --model base=m --note ... --n 5")

    def test_sub_blocks(self):
        # at sub-block 8 the RL model gains nothing (TPF capped), at 32 it gains 1.4x: one sentence per length,
        # and parity is judged at the smallest (the default)
        rows = [self.row("ar", "ar", None, 0.99, 1.0, 100.0)]
        for sb, rl_tpf in ((8, 4.0), (32, 8.4)):
            rows += [dict(self.row("base", "fast-dllm-v2", 0.9, 0.98, 4.0 if sb == 8 else 6.0, 250.0), sub_block=sb),
                     dict(self.row("rl", "fast-dllm-v2", 0.9, 0.98, rl_tpf), sub_block=sb)]
        v = report.verdicts(rows, ["arith"])
        self.assertIn("**Fast-dLLM v2** (adapted dLLM at parity with its AR parent): reproduced — arith: 98.0% vs AR 99.0% at 2.50x", v[0])
        rl = [x for x in v if x.startswith("**LightningRL**")]
        self.assertEqual(len(rl), 2)
        self.assertIn("(sub-block 8) (GRPO with a TPF reward raises parallelism at equal accuracy): refuted — arith @ 0.9: TPF x1.00", rl[0])
        self.assertIn("(sub-block 32) (GRPO with a TPF reward raises parallelism at equal accuracy): reproduced — arith @ 0.9: TPF x1.40", rl[1])

    def test_report_writes_one_plot_per_sub_block(self):
        import tempfile
        rows = [dict(self.row(m, "fast-dllm-v2", t, 0.9, 4.0 + t), sub_block=sb) for m in ("base", "rl") for t in (0.5, 0.9) for sb in (8, 32)]
        with tempfile.TemporaryDirectory() as d:
            meta = dict(command="report.py", date="today", seconds=1.0, n=2, seed=0, batch=1, notes=["A note."])
            plots = report.write_report(rows, ["arith"], [("base", "b"), ("rl", "r")], None, os.path.join(d, "p"), os.path.join(d, "R.md"), meta)
            self.assertEqual(sorted(os.path.basename(p) for p in plots), ["arith-sub-block-32-accuracy-vs-tpf.png", "arith-sub-block-8-accuracy-vs-tpf.png"])
            md = open(os.path.join(d, "R.md")).read()
            self.assertIn("A note.", md)
            self.assertIn("| rl | fast-dllm-v2 | 32 | 0.9 | 90.0% | 4.90 |", md)


if __name__ == "__main__":
    unittest.main()
