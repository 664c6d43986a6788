"""save_model / load_model keep the config keys that describe the model, not its weights (decode_defaults),
so a checkpoint the learner writes converts to a version that decodes as its parent did.
Run: /usr/bin/python3 -m unittest discover -s tools/train -p 'test_*.py'"""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402
from model import Config, Qwen2  # noqa: E402

TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "tiny-dllm", "tokenizer.json")


class CarriedConfigTest(unittest.TestCase):
    def test_decode_defaults_survive_a_load_and_save(self):
        vocab = train.Vocab(TOKENIZER)
        model = Qwen2(Config(vocab_size=vocab.size, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8))
        with tempfile.TemporaryDirectory() as d:
            first, second, plain = (os.path.join(d, n) for n in ("first", "second", "plain"))
            train.save_model(model, vocab, plain, TOKENIZER, "block-diffusion")
            self.assertNotIn("decode_defaults", json.load(open(os.path.join(plain, "config.json"))))
            model.carried_config = {"decode_defaults": {"sub_block_size": 32}}
            train.save_model(model, vocab, first, TOKENIZER, "block-diffusion")
            loaded, cfg = train.load_model(first, "cpu")
            self.assertEqual(cfg["decode_defaults"], {"sub_block_size": 32})
            train.save_model(loaded, vocab, second, TOKENIZER, "block-diffusion")
            with open(os.path.join(second, "config.json")) as f:
                self.assertEqual(json.load(f)["decode_defaults"], {"sub_block_size": 32})


if __name__ == "__main__":
    unittest.main()
