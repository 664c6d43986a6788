"""Hand-computed checks of the learner's and the distillation trainer's loss pieces (losses.py, blockdiff.py).
Run: /usr/bin/python3 -m unittest discover -s tools/learn -p 'test_*.py'"""
import math
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import losses  # noqa: E402
import blockdiff  # noqa: E402
from train import Vocab, block_causal_allowed  # noqa: E402  (blockdiff put tools/train on the path)
from model import Config, Qwen2  # noqa: E402

L = math.log


class PpoClipTest(unittest.TestCase):
    def setUp(self):
        # two samples x 4 tokens; old log-probs 0, so ratio = exp(new). The 4th token is masked out (ratio 5).
        self.new = torch.tensor([[L(1.5), L(0.5), L(1.1), L(5.0)], [L(1.5), L(0.5), L(1.1), L(5.0)]], requires_grad=True)
        self.old = torch.zeros(2, 4)
        self.adv = torch.tensor([1.0, -1.0])
        self.mask = torch.tensor([[True, True, True, False]] * 2)

    def test_value_and_clip_fraction(self):
        loss, st = losses.ppo_clip(self.new, self.old, self.adv, self.mask)
        # A=+1: min(1.5, 1.2)=1.2, min(0.5, 0.8)=0.5, min(1.1, 1.1)=1.1  -> 2.8
        # A=-1: min(-1.5, -1.2)=-1.5, min(-0.5, -0.8)=-0.8, -1.1        -> -3.4
        # loss = -(2.8 - 3.4) / 6 = 0.1
        self.assertAlmostEqual(loss.item(), 0.1, places=6)
        self.assertAlmostEqual(st["clip_frac"], 4 / 6, places=6)  # 1.5 and 0.5 lie outside [0.8, 1.2], twice
        self.assertAlmostEqual(st["ratio_mean"], (1.5 + 0.5 + 1.1) * 2 / 6, places=6)

    def test_clipping_on_both_sides_stops_the_gradient(self):
        loss, _ = losses.ppo_clip(self.new, self.old, self.adv, self.mask)
        loss.backward()
        g = self.new.grad
        # A>0, r=1.5 > 1+eps: clipped, no gradient.  A<0, r=0.5 < 1-eps: clipped, no gradient.
        self.assertEqual(g[0, 0].item(), 0.0)
        self.assertEqual(g[1, 1].item(), 0.0)
        # A<0, r=1.5: the unclipped -r*A... term -1.5 is the min -> d(-(-r)/6)/dlogp = r/6
        self.assertAlmostEqual(g[1, 0].item(), 1.5 / 6, places=6)
        # A>0, r=0.5: unclipped 0.5 is the min -> d(-r/6)/dlogp = -r/6
        self.assertAlmostEqual(g[0, 1].item(), -0.5 / 6, places=6)
        # inside the band: d(-r A / 6) = -1.1 A / 6
        self.assertAlmostEqual(g[0, 2].item(), -1.1 / 6, places=6)
        self.assertAlmostEqual(g[1, 2].item(), 1.1 / 6, places=6)
        self.assertEqual(g[0, 3].item(), 0.0)  # masked token

    def test_ratio_one_is_plain_policy_gradient(self):
        new = torch.zeros(1, 2, requires_grad=True)
        loss, st = losses.ppo_clip(new, torch.zeros(1, 2), torch.tensor([2.0]), torch.ones(1, 2, dtype=torch.bool))
        self.assertAlmostEqual(loss.item(), -2.0, places=6)
        self.assertEqual(st["clip_frac"], 0.0)


class KlTest(unittest.TestCase):
    def test_k3_values(self):
        new = torch.zeros(1, 3)
        ref = torch.tensor([[L(2.0), L(0.5), 7.0]])
        mask = torch.tensor([[True, True, False]])
        # d = ref - new: exp(d) - d - 1 = (2 - ln2 - 1) + (0.5 + ln2 - 1) = 0.5, over 2 tokens -> 0.25
        self.assertAlmostEqual(losses.kl_k3(new, ref, mask).item(), 0.25, places=6)

    def test_k3_zero_when_equal_and_nonnegative(self):
        x = torch.randn(3, 5)
        m = torch.ones(3, 5, dtype=torch.bool)
        self.assertAlmostEqual(losses.kl_k3(x, x.clone(), m).item(), 0.0, places=7)
        self.assertGreaterEqual(losses.kl_k3(x, torch.randn(3, 5), m).item(), 0.0)


class NllTest(unittest.TestCase):
    def test_only_correct_samples(self):
        lp = torch.tensor([[-1.0, -2.0, -9.0], [-3.0, -4.0, -5.0]])
        mask = torch.tensor([[True, True, False], [True, True, True]])
        self.assertAlmostEqual(losses.nll_on_correct(lp, mask, torch.tensor([True, False])).item(), 1.5, places=6)
        self.assertAlmostEqual(losses.nll_on_correct(lp, mask, torch.tensor([True, True])).item(), 15 / 5, places=6)

    def test_no_correct_sample_is_zero(self):
        lp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
        v = losses.nll_on_correct(lp, torch.ones(1, 2, dtype=torch.bool), torch.tensor([False]))
        self.assertEqual(v.item(), 0.0)
        v.backward()
        self.assertEqual(lp.grad.abs().sum().item(), 0.0)


class LightningRlTest(unittest.TestCase):
    def test_weights(self):
        new = torch.tensor([[0.0, 0.0]])
        old = torch.zeros(1, 2)
        ref = torch.tensor([[L(2.0), L(0.5)]])
        mask = torch.ones(1, 2, dtype=torch.bool)
        loss, st = losses.lightningrl_loss(new, old, ref, torch.tensor([1.0]), mask, torch.tensor([True]))
        # policy = -1 (ratio 1, A = 1); kl = 0.25; nll = -(0 + 0)/2 = 0  -> -1 + 0.01 * 0.25
        self.assertAlmostEqual(loss.item(), -1 + 0.0025, places=6)
        self.assertAlmostEqual(st["kl"], 0.25, places=6)
        new2 = torch.tensor([[-1.0, -3.0]])
        loss2, st2 = losses.lightningrl_loss(new2, new2.clone(), new2.clone(), torch.tensor([0.0]), mask, torch.tensor([True]))
        # A = 0, no KL: only 0.1 * NLL = 0.1 * 2
        self.assertAlmostEqual(loss2.item(), 0.2, places=6)
        self.assertEqual(st2["clip_frac"], 0.0)


class CertaintyForcingTest(unittest.TestCase):
    def test_entropy_temperature(self):
        # softmax([ln3, 0] / 0.5) = [0.9, 0.1]; H = -(0.9 ln 0.9 + 0.1 ln 0.1)
        h = losses.token_entropy(torch.tensor([L(3.0), 0.0]), 0.5).item()
        self.assertAlmostEqual(h, -(0.9 * L(0.9) + 0.1 * L(0.1)), places=6)

    def test_loss_value(self):
        logits = torch.tensor([[[L(3.0), 0.0], [L(3.0), 0.0], [0.0, L(3.0)]]])
        labels = torch.tensor([[0, 1, 1]])
        m = torch.tensor([[True, True, False]])
        mc = torch.tensor([[False, False, True]])
        loss, st = losses.certainty_forcing_loss(logits, labels, m, logits, mc)
        ce = (-L(0.75) - L(0.25)) / 2  # position 1 is wrong: -ln 0.25
        ce_c = -L(0.75)
        h = -(0.9 * L(0.9) + 0.1 * L(0.1))  # only correctly predicted masked positions: pos 0 in m, pos 2 in mc
        self.assertAlmostEqual(st["ce"], ce, places=5)
        self.assertAlmostEqual(st["ce_comp"], ce_c, places=5)
        self.assertAlmostEqual(st["entropy"], h, places=5)
        self.assertAlmostEqual(loss.item(), ce + ce_c + 2.0 * (h + h), places=5)
        self.assertAlmostEqual(st["correct_frac"], 2 / 3, places=6)

    def test_entropy_skips_wrong_predictions(self):
        logits = torch.tensor([[[L(3.0), 0.0]]], requires_grad=True)
        h, n = losses.entropy_on_correct(logits, torch.tensor([[1]]), torch.tensor([[True]]))
        self.assertEqual(n, 0)
        self.assertEqual(h.item(), 0.0)

    def test_mask_schedule(self):
        g = torch.Generator().manual_seed(0)
        eligible = torch.zeros(3, 12, dtype=torch.bool)
        eligible[0, 2:12] = True  # blocks 0, 1, 2 (block 4)
        eligible[1, 9:12] = True  # block 2 only
        seen = set()
        for _ in range(60):
            m, mc, later, k = losses.certainty_forcing_masks(eligible, 4, 0.5, g)
            self.assertFalse(bool((m & mc).any()))
            self.assertEqual(int(k[2]), -1)  # no eligible position -> nothing masked
            self.assertFalse(bool((m | mc | later)[2].any()))
            self.assertEqual(int(k[1]), 2)
            kb = int(k[0])
            seen.add(kb)
            blk = torch.arange(12) // 4
            self.assertTrue(torch.equal((m | mc)[0], eligible[0] & (blk == kb)))  # mask + complement = block k
            self.assertTrue(torch.equal(later[0], eligible[0] & (blk > kb)))  # later blocks fully masked
            self.assertFalse(bool((m | mc | later)[0, blk < kb].any()))  # earlier blocks clean
        self.assertEqual(seen, {0, 1, 2})
        m, mc, _, _ = losses.certainty_forcing_masks(eligible, 4, 1.0, g)
        self.assertFalse(bool(mc.any()))
        with self.assertRaises(ValueError):
            losses.certainty_forcing_masks(torch.ones(1, 10, dtype=torch.bool), 4, 0.5, g)


def tiny_model(vocab_size):
    torch.manual_seed(0)
    c = Config(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    return Qwen2(c).eval()


class FakeVocab:
    pad, eos, mask = 0, 1, 2


class ResponseLogprobsTest(unittest.TestCase):
    """The learner's log-probs: response fully masked under the training block-size mask, token-shifted."""

    def test_matches_the_first_decoding_step_and_is_padding_invariant(self):
        model = tiny_model(20)
        v = FakeVocab()
        rows = [([5, 6, 7], [8, 9, 1]), ([5, 6, 7, 10, 11], [12, 1])]
        with torch.no_grad():
            logp, mask = blockdiff.response_logprobs(model, rows, v)
            self.assertEqual(list(logp.shape), [2, 3])
            self.assertEqual(mask.tolist(), [[True, True, True], [True, True, False]])
            for i, (p, r) in enumerate(rows):
                # a decoder's first step on this block: prompt, then every position up to the block end masked,
                # block-causal attention; position j is predicted by the output at j-1
                seq = torch.tensor([p + [v.mask] * (blockdiff.BLOCK - len(p))])
                out = model(seq, torch.arange(blockdiff.BLOCK)[None], block_causal_allowed(blockdiff.BLOCK, blockdiff.BLOCK))
                lp = torch.log_softmax(out[0], -1)
                want = [lp[len(p) - 1 + j, t].item() for j, t in enumerate(r)]
                got = logp[i, : len(r)].tolist()
                for a, b in zip(got, want):
                    self.assertAlmostEqual(a, b, places=4)
                alone, _ = blockdiff.response_logprobs(model, [rows[i]], v)
                for a, b in zip(alone[0].tolist(), got):
                    self.assertAlmostEqual(a, b, places=4)

    def test_later_block_sees_the_clean_earlier_block(self):
        model = tiny_model(20)
        v = FakeVocab()
        p = [5] * 30
        r = [6, 7, 8, 9, 1]  # crosses the block boundary at 32
        with torch.no_grad():
            logp, _ = blockdiff.response_logprobs(model, [(p, r)], v)
            # token 8 sits at position 32, the first slot of block 1: predicted by the clean output at 31
            seq = torch.tensor([p + [6, 7]])
            out = model(seq, torch.arange(32)[None], block_causal_allowed(32, 32))
            self.assertAlmostEqual(logp[0, 2].item(), torch.log_softmax(out[0, 31], -1)[8].item(), places=4)

    def test_certainty_forcing_batch_runs_and_backpropagates(self):
        model = tiny_model(20).train()
        v = FakeVocab()
        loss, st = blockdiff.certainty_forcing_batch(model, [([5, 6], [7, 8, 1]), ([5], [9, 1])], v, torch.Generator().manual_seed(1))
        loss.backward()
        self.assertTrue(math.isfinite(loss.item()))
        self.assertGreater(sum(p.grad.abs().sum().item() for p in model.parameters() if p.grad is not None), 0)
        self.assertGreater(st["ce"] + st["ce_comp"], 0)


class VocabImportTest(unittest.TestCase):
    def test_bundled_tokenizer_loads(self):
        tok = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "tiny-dllm", "tokenizer.json")
        v = Vocab(tok)
        self.assertEqual((v.pad, v.eos, v.mask), (0, 1, 2))


if __name__ == "__main__":
    unittest.main()
