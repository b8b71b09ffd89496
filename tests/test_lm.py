"""The Llama-style language model: causality, learning, KV cache, Llama equivalence, checkpoints."""

import json
from dataclasses import replace

import pytest
import torch

from minimllm.lm import (
    REFERENCE_PHASES,
    KVCache,
    LanguageModel,
    LMConfig,
    PretrainConfig,
    complete,
    from_transformers,
    generate,
    load_reference,
    pretrain,
    pretrain_phases,
    random_windows,
    reading_order_cue,
    text_qa,
    to_transformers,
    top_k_filter,
    top_p_filter,
    train_reference,
)
from minimllm.pretrained import load_metrics, load_tokenizer
from minimllm.tokenizer import train_tokenizer
from minimllm.train import TrainConfig, train

V = 97


def tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=64,
               max_seq_len=48)
    model = LanguageModel(LMConfig(**{**cfg, **kw}))
    for p in model.parameters():  # larger weights than the init, so that differences show
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def ids(B=2, T=20, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_shapes_and_loss():
    m, x = tiny(), ids()
    out = m(x, labels=x)
    assert out.logits.shape == (2, 20, V) and out.hidden_states.shape == (2, 20, 32)
    manual = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V),
                                               x[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, manual)
    emb = m(inputs_embeds=m.embed_tokens(x)).logits
    assert torch.allclose(emb, out.logits)


@pytest.mark.parametrize("t", [0, 7, 19])
def test_changing_token_t_never_changes_earlier_logits(t):
    m, x = tiny(), ids()
    y = x.clone()
    y[:, t] = (y[:, t] + 1) % V
    a, b = m(x).logits, m(y).logits
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-3)


def test_overfits_one_batch():
    m, x = tiny(), ids(B=4, T=16)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.02)
    cfg = TrainConfig(steps=50, lr=1e-2, weight_decay=0.0, min_lr_ratio=1.0, device="cpu")
    h = train(m, lambda m, b: m(b, labels=b).loss, [x], cfg)
    assert h.losses[-1] < 0.1 * h.losses[0]


def test_too_long_and_bad_inputs_raise():
    m = tiny()
    with pytest.raises(ValueError, match="context length"):
        m(ids(T=49))
    cache = KVCache(m.config, 2)
    m(ids(T=40), cache=cache)
    with pytest.raises(ValueError, match="context length"):
        m(ids(T=9), cache=cache)
    with pytest.raises(ValueError, match="context length"):
        generate(m, ids(T=40), max_new_tokens=9)
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[V]]))
    with pytest.raises(ValueError, match="exactly one"):
        m()
    with pytest.raises(ValueError):
        LMConfig(dim=30, n_heads=4)


def test_cache_in_chunks_equals_full_forward():
    m, x = tiny(), ids(T=30)
    full = m(x).logits
    cache = KVCache(m.config, 2)
    parts = [m(x[:, a:b], cache=cache).logits for a, b in [(0, 11), (11, 12), (12, 30)]]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_attention_mask_padding():
    m, x = tiny(), ids(B=1, T=10)
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], 1)  # right padding
    mask = torch.tensor([[1] * 10 + [0] * 3])
    assert torch.allclose(m(padded, attention_mask=mask).logits[:, :10], m(x).logits, atol=1e-5)
    assert torch.allclose(m(x, attention_mask=torch.ones(1, 10)).logits, m(x).logits, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"temperature": 1.0, "top_k": 10},
                                {"temperature": 0.8, "top_p": 0.9}])
def test_generation_same_with_and_without_cache(kw):
    m, x = tiny(), ids(T=5)
    a = generate(m, x, max_new_tokens=25, use_cache=True,
                 generator=torch.Generator().manual_seed(0), **kw)
    b = generate(m, x, max_new_tokens=25, use_cache=False,
                 generator=torch.Generator().manual_seed(0), **kw)
    assert a.shape == (2, 30) and torch.equal(a[:, :5], x) and torch.equal(a, b)
    e1 = generate(m, inputs_embeds=m.embed_tokens(x), max_new_tokens=10, use_cache=True,
                  generator=torch.Generator().manual_seed(0), **kw)
    e2 = generate(m, inputs_embeds=m.embed_tokens(x), max_new_tokens=10, use_cache=False,
                  generator=torch.Generator().manual_seed(0), **kw)
    assert e1.shape == (2, 10) and torch.equal(e1, e2) and torch.equal(e1, a[:, 5:15])


def test_greedy_is_argmax_and_eos_stops():
    m, x = tiny(), ids(B=1, T=5)
    out = generate(m, x, max_new_tokens=3)
    assert out[0, 5].item() == m(x).logits[0, -1].argmax().item()
    eos = out[0, 6].item()
    stopped = generate(m, x, max_new_tokens=10, eos_token_id=eos)
    assert stopped.shape[1] <= 7 and stopped[0, -1].item() == eos


def test_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(top_k_filter(logits, 1)).sum() == 3
    assert torch.isinf(top_p_filter(logits, 0.5)).tolist() == [[False, True, True, True]]
    assert torch.isinf(top_p_filter(logits, 0.95)).tolist() == [[False, False, False, True]]
    assert torch.equal(top_p_filter(logits, 1.0), logits)


@pytest.mark.parametrize("kw", [{}, {"n_kv_heads": 4, "tie_embeddings": True}, {"n_kv_heads": 1}])
def test_llama_equivalence_both_ways(kw):
    m, x = tiny(**kw), ids()
    hf = to_transformers(m)
    assert type(hf).__name__ == "LlamaForCausalLM"
    with torch.no_grad():
        ours, theirs = m(x).logits, hf(x).logits
    assert ((ours - theirs).norm() / theirs.norm()).item() < 1e-5
    hf2 = to_transformers(tiny(**kw))  # a second model; perturb its weights on the HF side
    with torch.no_grad():
        for p in hf2.parameters():
            p.add_(0.01 * torch.randn_like(p))
        back = from_transformers(hf2)
        assert ((back(x).logits - hf2(x).logits).norm() / hf2(x).logits.norm()).item() < 1e-5


def test_checkpoint_round_trip_and_errors(tmp_path):
    tok = train_tokenizer(["a red circle above a blue square."] * 20, vocab_size=300)
    m = tiny(vocab_size=len(tok))
    m.save_pretrained(tmp_path / "lm", tok, metrics={"steps": 1})
    m2, tok2 = (LanguageModel.from_pretrained(tmp_path / "lm", device="cpu"),
                load_tokenizer(tmp_path / "lm"))
    x = torch.tensor([tok("a red square").input_ids])
    assert torch.equal(m2(x).logits, m(x).logits) and len(tok2) == len(tok)
    assert load_metrics(tmp_path / "lm") == {"steps": 1}
    with pytest.raises(ValueError, match="do not belong together"):
        tiny(vocab_size=len(tok) + 1).save_pretrained(tmp_path / "x", tok)
    cfg = json.loads((tmp_path / "lm" / "config.json").read_text())
    (tmp_path / "lm" / "config.json").write_text(json.dumps({**cfg, "dim": 64}))
    with pytest.raises(ValueError, match="does not match"):
        LanguageModel.from_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "config.json").write_text(json.dumps({**cfg, "n_layerz": 2}))
    with pytest.raises(ValueError, match="unknown LMConfig fields"):
        LanguageModel.from_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "config.json").write_text(json.dumps(cfg))
    other = train_tokenizer(["a red circle above a blue square and more words here."] * 20,
                            vocab_size=320)
    other.save_pretrained(tmp_path / "lm")  # weights and config agree, the tokenizer does not
    with pytest.raises(ValueError, match="do not belong together"):
        LanguageModel.from_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(RuntimeError, match="corrupt"):
        LanguageModel.from_pretrained(tmp_path / "lm")
    with pytest.raises(FileNotFoundError, match="make checkpoints"):
        LanguageModel.from_pretrained(tmp_path / "nowhere")


def test_tied_embeddings_are_saved_once_and_tied_again(tmp_path):
    m = tiny(tie_embeddings=True)
    m.save_pretrained(tmp_path / "tied")
    from safetensors.torch import load_file

    assert "lm_head.weight" not in load_file(str(tmp_path / "tied" / "model.safetensors"))
    again = LanguageModel.from_pretrained(tmp_path / "tied", device="cpu")
    assert again.lm_head.weight is again.embed_tokens.weight
    x = torch.randint(0, m.config.vocab_size, (1, 5))
    assert torch.equal(again(x).logits, m(x).logits)


def test_train_reference_and_load_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    path = train_reference(quick=True, device="cpu")
    assert path == tmp_path / "data" / "checkpoints" / "lm"
    assert (path / "model.safetensors").stat().st_size < 8e6
    model, tok = load_reference(device="cpu")
    assert model.config.vocab_size == len(tok)
    mine = tiny(vocab_size=len(tok))
    # the reader's own is preferred
    mine.save_pretrained(tmp_path / "data" / "artifacts" / "lm", tok)
    again, _ = load_reference(device="cpu")
    assert again.config.dim == 32
    metrics = load_metrics(path)
    quick_steps = PretrainConfig.quick().steps
    assert [p["steps"] for p in metrics["phases"]] == [quick_steps] * len(REFERENCE_PHASES)
    assert [p["lr"] for p in metrics["phases"]] == [p.lr for p in REFERENCE_PHASES]
    curve = metrics["curve"]
    assert sorted({p["phase"] for p in curve}) == list(range(len(REFERENCE_PHASES)))
    assert curve[-1]["step"] == quick_steps * len(REFERENCE_PHASES)
    assert all(a["train_seconds"] <= b["train_seconds"] for a, b in zip(curve, curve[1:]))
    assert {"train", "heldout"} <= set(curve[-1])
    assert metrics["text_qa"] == curve[-1]["train"]
    assert 0.0 <= metrics["text_qa"]["overall"] <= 1.0


def test_windows_start_at_texts():
    stream = torch.tensor([1, 5, 6, 2, 1, 7, 8, 9, 2, 1, 3, 2, 1, 4, 4, 2])
    batch = random_windows(stream, 64, 4, seed=3, start_token=1)(0)
    assert (batch[:, 0] == 1).all() and batch.shape == (64, 4)
    assert {tuple(r) for r in batch.tolist()} == {(1, 5, 6, 2), (1, 7, 8, 9), (1, 3, 2, 1),
                                                  (1, 4, 4, 2)}
    anywhere = random_windows(stream, 64, 4, seed=3)(0)
    assert (anywhere[:, 0] != 1).any()
    with pytest.raises(ValueError, match="starts a window"):
        random_windows(stream, 4, 4, start_token=99)


def test_text_qa_scores_a_hand_made_example():
    """An LM that has learnt two texts by heart answers their questions; `complete` cuts the
    answer at the full stop and `text_qa` scores it per type."""
    texts = ["a red circle. what color is the circle? red.",
             "a blue star. how many stars are there? 1."]
    tok = train_tokenizer(texts * 20, vocab_size=300)
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2,
                                   n_kv_heads=2, ffn_dim=64, max_seq_len=32))
    batches = [torch.tensor([tok(t).input_ids + [tok.eos_token_id]]) for t in texts]
    train(model, lambda m, b: m(b, labels=b).loss, batches * 75,
          TrainConfig(steps=150, lr=1e-2, device="cpu", log_every=0))
    prompts = ["a red circle. what color is the circle?", "a blue star. how many stars are there?"]
    assert complete(model, tok, prompts) == ["red", "1"]
    items = [{"prompt": prompts[0], "answer": "Red", "qtype": "color"},
             {"prompt": prompts[1], "answer": "one", "qtype": "count"},  # "one" is read as 1
             {"prompt": prompts[1], "answer": "2", "qtype": "count"}]
    scores, answers = text_qa(model, tok, items)
    assert answers == ["red", "1", "1"]
    assert scores == {"overall": pytest.approx(2 / 3), "color": 1.0, "count": 0.5}


def test_text_qa_reads_a_reasoned_relation_answer():
    """A relation answer that reasons first is generated whole (longer than a short answer) and
    scored on the conclusion after its last ", so"."""
    caption = "a red circle in the top left and a blue star in the center."
    question = "is the red circle above the blue star?"
    text = (f"{caption} {question} the red circle is in the top left and the blue star is in the "
            "center; top left above center, so yes.")
    tok = train_tokenizer([text] * 20, vocab_size=300)
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2,
                                   n_kv_heads=2, ffn_dim=64, max_seq_len=64))
    batch = torch.tensor([tok(text).input_ids + [tok.eos_token_id]])
    train(model, lambda m, b: m(b, labels=b).loss, [batch] * 150,
          TrainConfig(steps=150, lr=1e-2, device="cpu", log_every=0))
    items = [{"prompt": f"{caption} {question}", "answer": a, "qtype": "relation"}
             for a in ("yes", "no")]
    scores, answers = text_qa(model, tok, items)
    assert answers[0].endswith("top left above center, so yes") and answers[0] == answers[1]
    assert scores == {"overall": 0.5, "relation": 0.5}


def test_pretrain_curve_and_determinism():
    config = PretrainConfig.quick()
    a = pretrain(config, "cpu", n_eval_scenes=10)
    b = pretrain(config, "cpu", n_eval_scenes=10)
    assert [p["step"] for p in a[3]] == [3, 6]
    assert a[2].losses == b[2].losses  # same seed, same run
    assert set(a[3][-1]["heldout"]) >= {"overall", "color", "count"}


def test_a_second_phase_goes_on_from_the_first():
    """`pretrain_phases` is `pretrain` on the model the previous phase left, with the tokenizer
    it trained; the curve counts steps from the start and tags each point with its phase."""
    first = PretrainConfig.quick()
    second = replace(first, lr=1e-4, corpus_seed=1, rounds={"relation": 2}, placed=1.0)
    model, tok, histories, curve = pretrain_phases([first, second], "cpu", n_eval_scenes=10)
    by_hand = pretrain(first, "cpu", n_eval_scenes=10)
    again = pretrain(second, "cpu", n_eval_scenes=10, init=by_hand[:2])
    assert histories[0].losses == by_hand[2].losses
    assert histories[1].losses == again[2].losses  # the second phase went on from the first
    assert again[1] is by_hand[1]  # and kept its tokenizer
    assert [(p["phase"], p["step"]) for p in curve] == [(0, 3), (0, 6), (1, 9), (1, 12)]
    assert torch.equal(model.lm_head.weight, again[0].lm_head.weight)


def test_reading_order_cue_answers_from_the_order_of_mention():
    caption = ("a small red circle in the top right and a large blue star in the bottom left. ")
    cue = {q: reading_order_cue(caption + q) for q in (
        "is the red circle to the left of the blue star?",   # named first, asked left: yes
        "is the blue star to the left of the circle?",       # named second, asked left: no
        "would you say the star is below the red circle?",   # named second, asked below: yes
        "can you see the small red circle above the star?")}  # named first, asked above: yes
    assert list(cue.values()) == ["yes", "no", "yes", "yes"]
    assert reading_order_cue(caption + "what color is the circle?") is None  # not a relation
    two_stars = "a red star in the top left and a red star in the bottom right. "
    assert reading_order_cue(two_stars + "is the red star above the red star?") is None


def test_relation_cue_split_separates_a_reader_of_the_cue(monkeypatch):
    """A 'model' that answers every relation question with the order-of-mention cue scores 1 where
    the cue is right and 0 where it is wrong, whether it answers bare or reasons first; the two
    parts hold every question."""
    import minimllm.lm as lm

    def answer_by_cue(model, tokenizer, items):  # every other answer after a scratchpad
        return {}, [f"the a is in the top left; top left above center, so {cue}" if k % 2 else cue
                    for k, cue in enumerate(reading_order_cue(it["prompt"]) for it in items)]

    monkeypatch.setattr(lm, "text_qa", answer_by_cue)
    split = lm.relation_cue_split(None, None, n_scenes=60, seed=3)
    assert split["cue right"]["accuracy"] == 1.0 and split["cue wrong"]["accuracy"] == 0.0
    assert split["cue right"]["n"] + split["cue wrong"]["n"] == split["all"]["n"]
    assert split["cue wrong"]["n"] > 0  # the cue is not always right
