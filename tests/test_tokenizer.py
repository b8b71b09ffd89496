"""The byte-level BPE tokenizer: special tokens, round trips, chat template."""

import pytest
from transformers import PreTrainedTokenizerFast

from minimllm.tokenizer import SPECIAL_TOKENS, train_tokenizer

CORPUS = [
    "a large red circle above a small blue square.",
    "there is a green star to the left of a yellow cross. what color is the star? green.",
    "the image shows a small purple triangle in the top left. how many objects are there? 1.",
] * 30


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=400)


def test_special_tokens_have_fixed_ids(tok):
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS.values()] == list(range(8))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    ids = tok("a red <image> circle <|user|>", add_special_tokens=False).input_ids
    assert 3 in ids and 5 in ids  # special tokens are never split


@pytest.mark.parametrize("text", [CORPUS[1], "unseen words: dodecahedron, Zürich, 🙂\n\ttabs", ""])
def test_round_trip(tok, text):
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_learned_merges_compress(tok):
    text = CORPUS[0]
    assert len(tok(text, add_special_tokens=False).input_ids) <= len(text.split()) + 1


def test_save_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert len(again) == len(tok)
    for text in CORPUS[:3]:
        assert again(text).input_ids == tok(text).input_ids
    assert again.chat_template == tok.chat_template
    assert again.pad_token_id == 0 and again.convert_tokens_to_ids("<image>") == 3


def test_chat_template_and_assistant_mask(tok):
    chat = [{"role": "system", "content": "be brief"},
            {"role": "user", "content": "<image>\ncolor?"},
            {"role": "assistant", "content": "red."}]
    text = tok.apply_chat_template(chat, tokenize=False)
    assert text == ("<s><|system|>\nbe brief<|end|>\n<|user|>\n<image>\ncolor?<|end|>\n"
                    "<|assistant|>\nred.<|end|>\n")
    prompt = tok.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|user|>\n<image>\ncolor?<|end|>\n<|assistant|>\n")
    enc = tok.apply_chat_template(chat, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    kept = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(kept) == "red.<|end|>"
    with pytest.raises(Exception, match="unknown chat role"):
        tok.apply_chat_template([{"role": "robot", "content": "hi"}], tokenize=False)


def test_bad_input():
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(CORPUS, vocab_size=100)
    with pytest.raises(ValueError, match="non-empty"):
        train_tokenizer([], vocab_size=400)


def test_reserved_ids_and_padding():
    from minimllm.tokenizer import EOS_ID, IMAGE_TOKEN_ID, PAD_ID, SPECIAL_IDS, pad_sequences

    tok = train_tokenizer(["a red circle."] * 10, vocab_size=300)
    for name, token in SPECIAL_TOKENS.items():
        assert tok.convert_tokens_to_ids(token) == SPECIAL_IDS[name]
    assert ((tok.pad_token_id, tok.eos_token_id, tok.convert_tokens_to_ids("<image>"))
            == (PAD_ID, EOS_ID, IMAGE_TOKEN_ID))
    ids, mask = pad_sequences([[5, 6, 7], [8]], pad_id=PAD_ID)
    assert ids.tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    labels, _ = pad_sequences([[1], [2, 3]], pad_id=-100, length=4)
    assert labels.tolist() == [[1, -100, -100, -100], [2, 3, -100, -100]]
    with pytest.raises(ValueError, match="more than length"):
        pad_sequences([[1, 2, 3]], pad_id=0, length=2)
