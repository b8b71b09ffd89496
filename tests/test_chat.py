"""Tests of minimllm.chat (conversations to inputs, assistant-only labels), minimllm.evaluate (VQA
normalisation, POPE sampling and metrics, AUROC) and minimllm.assistant (the main job, the chat
command)."""


import io
import json

import numpy as np
import pytest
import torch

from minimllm.chat import END_ID, ChatProcessor, chat, image_turn, load_mllm, vqa_messages
from minimllm.data import COLORS, SHAPES, make_conversation, render_scene, sample_scene, text_corpus
from minimllm.evaluate import (
    answer_prior,
    auroc,
    binary_metrics,
    constant_pope,
    final_answer,
    normalize_answer,
    pair_frequencies,
    pope_questions,
    position_precision,
    prior_accuracy,
    vqa_accuracy,
)
from minimllm.lm import LMConfig
from minimllm.mllm import MLLM, MLLMConfig
from minimllm.tokenizer import IMAGE_TOKEN, IMAGE_TOKEN_ID, train_tokenizer
from minimllm.vision import ViTConfig

VIT = dict(image_size=32, patch_size=8, hidden_size=16, num_layers=1, num_heads=2,
           intermediate_size=32)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(text_corpus(n_scenes=60, seed=0), vocab_size=300)


@pytest.fixture(scope="module")
def processor(tokenizer):
    return ChatProcessor(tokenizer, num_image_tokens=4, image_size=32)


def scenes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [sample_scene(rng, image_size=32) for _ in range(n)]


def assistant_text(processor, ids, labels):
    """The tokens the labels keep, decoded, and the assistant turns written out by hand."""
    kept = [i for i, label in zip(ids, labels) if label != -100]
    assert all(label in (-100, i) for i, label in zip(ids, labels)), "labels are the ids or -100"
    return processor.tokenizer.decode(kept)


def test_labels_are_exactly_the_assistant_turns(processor):
    single = vqa_messages("what colour is the circle?", "red")
    multi = [image_turn("describe the image."), {"role": "assistant", "content": "a red circle."},
             {"role": "user", "content": "how many objects are there?"},
             {"role": "assistant", "content": "1"}]
    for messages in (single, multi):
        ids, labels = processor.tokenize(messages)
        want = "".join(m["content"] + "<|end|>" for m in messages if m["role"] == "assistant")
        assert assistant_text(processor, ids, labels) == want
        assert ids.count(IMAGE_TOKEN_ID) == 4 and labels[ids.index(IMAGE_TOKEN_ID)] == -100
    batch = processor([single, multi], [render_scene(s) for s in scenes(2)])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["labels"].shape == batch["input_ids"].shape
    padding = batch["attention_mask"] == 0
    assert (batch["labels"][padding] == -100).all(), "padding is never a target"


def test_an_empty_mask_or_a_wrong_image_count_is_an_error(processor):
    with pytest.raises(ValueError, match="no assistant tokens"):
        processor.tokenize([image_turn("what do you see?")])
    with pytest.raises(ValueError, match="placeholders"):
        processor([vqa_messages("what colour?", "red")], images=None)
    glued = [{"role": "user", "content": f"look{IMAGE_TOKEN}here"},
             {"role": "assistant", "content": "ok"}]
    ids, _ = processor.tokenize(glued)  # the placeholder survives tokenization even when glued
    assert ids.count(IMAGE_TOKEN_ID) == 4
    with pytest.raises(ValueError, match="role"):
        processor.tokenize([{"role": "user", "text": "hi"}])


def test_generation_prompt_ends_with_the_assistant_role_and_chat_answers(tokenizer, processor):
    ids, labels = processor.tokenize([image_turn("what colour is the circle?")],
                                     add_generation_prompt=True)
    assert processor.tokenizer.decode(ids[-2:]) == "<|assistant|>\n" and set(labels) == {-100}
    torch.manual_seed(0)
    lm = LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=4, n_kv_heads=2,
                  ffn_dim=64,
                  max_seq_len=96)
    model = MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=lm, projector="c_abstractor",
                            num_image_tokens=4))
    images = [render_scene(s) for s in scenes(3)]
    questions = ["what colour is the circle?", "how many objects are there?",
                 "what colour is the circle?"]
    replies = chat(model, processor, [vqa_messages(q) for q in questions], images, max_new_tokens=5)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    one = chat(model, processor, vqa_messages(questions[2]), [images[2]], max_new_tokens=5)
    assert one == [replies[2]], "batching by length must not change an answer"
    words = processor.tokenizer.decode([40, 41]).strip()
    assert processor.decode(torch.tensor([[40, 41, END_ID, 42]])) == [words], "cut at <|end|>"


def test_vqa_normalisation_and_accuracy():
    assert normalize_answer("Two.") == "2" and normalize_answer("the Top Left") == "top left"
    assert normalize_answer("a red circle!") == "red circle" and normalize_answer("Yes") == "yes"
    scores = vqa_accuracy(["Red", "three", "no", "top left"], ["red", "3", "yes", "top right"],
                          ["color", "count", "existence", "position"])
    assert scores == {"overall": 0.5, "color": 1.0, "count": 1.0, "existence": 0.0, "position": 0.0}
    reasoned = ("the red circle is in the top left and the blue star is in the center; top left "
                "above center, so yes")
    assert final_answer(reasoned) == "yes" and final_answer("top left") == "top left"
    assert vqa_accuracy([reasoned, reasoned], ["yes", "no"], ["relation"] * 2)["overall"] == 0.5
    with pytest.raises(ValueError):
        vqa_accuracy([], [], [])


def test_answer_prior_against_hand_counts():
    answers = ["red", "blue", "Red", "1", "2", "2", "yes", "no", "no", "no", "small", "large"]
    qtypes = ["color"] * 3 + ["count"] * 3 + ["existence"] * 4 + ["size"] * 2
    prior = answer_prior(answers, qtypes)
    # red 2 of 3, "2" 2 of 3, no 3 of 4; size tied 1-1: the first alphabetically
    assert prior == {"color": "red", "count": "2", "existence": "no", "size": "large"}
    test_answers = ["red", "blue", "2", "0", "yes", "no", "small", "purple"]
    test_types = ["color", "color", "count", "count", "existence", "existence", "size", "shape"]
    scores = prior_accuracy(prior, test_answers, test_types)
    assert scores["color"] == 0.5 and scores["count"] == 0.5 and scores["existence"] == 0.5
    assert scores["size"] == 0.0 and scores["shape"] == 0.0  # a type the prior never saw
    assert scores["overall"] == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="qtypes is empty"):
        answer_prior(["red"], [])


def test_pope_blind_baselines():
    labels = [True, True, False, False, False]
    base = constant_pope(labels)
    assert base["always yes"]["accuracy"] == pytest.approx(0.4)
    assert base["always yes"]["recall"] == 1.0 and base["always yes"]["yes_ratio"] == 1.0
    assert base["always yes"]["f1"] == pytest.approx(2 * 0.4 / 1.4)
    assert base["always no"]["accuracy"] == pytest.approx(0.6)
    assert base["always no"]["f1"] == 0.0 and base["always no"]["yes_ratio"] == 0.0


def test_pope_in_heldout_phrasings():
    from minimllm.data import HELDOUT_TEMPLATES

    rng = np.random.default_rng(3)
    wordings = set()
    for scene in scenes(40, seed=2):
        present = {(o["color"], o["shape"]) for o in scene["objects"]}
        for q in pope_questions(scene, rng, "adversarial", phrasings="heldout"):
            article = "an" if q["color"][0] in "aeiou" else "a"
            desc = f"{article} {q['color']} {q['shape']}"
            (template,) = [t for t in HELDOUT_TEMPLATES["existence"]
                           if t.format(desc=desc) == q["question"]]
            wordings.add(template)
            assert (q["answer"] == "yes") == ((q["color"], q["shape"]) in present)
    assert wordings == set(HELDOUT_TEMPLATES["existence"])
    with pytest.raises(ValueError, match="phrasings"):
        pope_questions(scenes(1)[0], rng, "random", phrasings="other")


def test_binary_metrics_and_auroc_by_hand():
    labels = [1, 1, 1, 0, 0, 0]
    predictions = [1, 1, 0, 1, 0, 0]  # tp 2, fn 1, fp 1, tn 2
    m = binary_metrics(labels, predictions, scores=[0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    assert m["accuracy"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == 0.5
    # positives 0.9, 0.8, 0.3 vs negatives 0.7, 0.2, 0.1: 8 of 9 pairs ordered right
    assert m["auroc"] == pytest.approx(8 / 9)
    assert auroc([1, 0], [0.5, 0.5]) == 0.5 and auroc([1, 0, 1], [3, 1, 2]) == 1.0
    with pytest.raises(ValueError, match="positive"):
        auroc([1, 1], [0.2, 0.3])


def test_pope_questions_are_balanced_and_negatives_truly_absent():
    rng = np.random.default_rng(0)
    all_scenes = scenes(200, seed=1)
    popular = pair_frequencies(all_scenes)
    for scene in all_scenes[:60]:
        present = {(o["color"], o["shape"]) for o in scene["objects"]}
        for setting in ("random", "popular", "adversarial"):
            qs = pope_questions(scene, rng, setting, popular)
            yes = [(q["color"], q["shape"]) for q in qs if q["answer"] == "yes"]
            no = [(q["color"], q["shape"]) for q in qs if q["answer"] == "no"]
            assert len(yes) == len(no) == min(len(present), 3)
            assert set(yes) <= present and not set(no) & present and len(set(no)) == len(no)
            assert all(q["question"] == f"is there a {q['color']} {q['shape']} in the image?"
                       for q in qs)
            if setting == "adversarial":
                assert all(any(c == pc or s == ps for pc, ps in present) for c, s in no)
            if setting == "popular":
                ranked = [p for p in popular if p not in present]
                assert no == ranked[:len(no)]
    assert len(popular) <= len(COLORS) * len(SHAPES)
    with pytest.raises(ValueError, match="popular"):
        pope_questions(all_scenes[0], rng, "popular")


def test_position_precision_counts_wrong_places():
    scene = {"objects": [{"color": "red", "shape": "circle", "position": "top left",
                          "size": "large"}]}
    assert position_precision([scene], ["a large red circle in the top left."]) == 1.0
    wrong = "a large red circle in the center. a blue star in the top left."
    assert position_precision([scene], [wrong]) == 0.0


def test_a_conversation_from_the_generator_tokenizes(processor):
    scene = scenes(1, seed=4)[0]
    messages = make_conversation(scene, np.random.default_rng(0))
    messages = [image_turn(messages[0]["content"]), *messages[1:]]
    ids, labels = processor.tokenize(messages)
    assert sum(label != -100 for label in labels) > 0


def test_quick_main_job_saves_every_metric_it_prints_and_chat_answers(tmp_path, capsys,
                                                                      monkeypatch):
    from PIL import Image

    from minimllm.assistant import main_job, report_lines
    from minimllm.cli import main

    metrics = main_job(out_dir=tmp_path / "assistant", quick=True)
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "assistant" / "metrics.json").read_text())
    lines = report_lines(saved, saved["settings"]["targets"])
    assert all(line in printed for line in lines), "every printed metric comes from metrics.json"
    assert len(lines) == 7 and all("; blind: " in line for line in lines)
    assert saved["passed"] == metrics["passed"]
    assert set(saved["pope"]) == {"random", "popular", "adversarial"}
    assert (tmp_path / "assistant" / "answers.png").stat().st_size > 1000
    png = tmp_path / "scene.png"  # any size and mode: RGBA, 90 x 70
    render_scene(scenes(1)[0]).convert("RGBA").resize((90, 70)).save(png)
    assert main(["chat", "--model", str(tmp_path / "assistant"), "--image", str(png),
                 "what colour is the circle?", "--max-new-tokens", "4"]) == 0
    model, processor = load_mllm(tmp_path / "assistant", device="cpu")
    assert type(model).__name__ == "TwoViewMLLM" and processor.num_image_tokens == 18
    tuned = saved["settings"]["format_prompt"]  # chat appends the model's own format prompt
    want = chat(model, processor, [image_turn("what colour is the circle?" + tuned)],
                [Image.open(png).convert("RGB")], max_new_tokens=4)[0]
    assert capsys.readouterr().out == want + "\n", "the command answers as chat() does"
    assert main(["chat", "--model", str(tmp_path / "assistant"), "--image", str(png),
                 "describe the image.", "--max-new-tokens", "4", "--format-prompt", ""]) == 0
    want = chat(model, processor, [image_turn("describe the image.")],
                [Image.open(png).convert("RGB")], max_new_tokens=4)[0]
    assert capsys.readouterr().out == want + "\n", '--format-prompt "": the message as typed'
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="cannot read the image"):
        main(["chat", "--model", str(tmp_path / "assistant"), "--image",
              str(tmp_path / "broken.png"), "hi"])
    # no question: one per line from stdin, the model loaded once, an empty line ends
    questions = ["what colour is the circle?", "how many objects are there?"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(questions) + "\n\nnot asked\n"))
    assert main(["chat", "--model", str(tmp_path / "assistant"), "--image", str(png),
                 "--max-new-tokens", "4"]) == 0
    replies = chat(model, processor, [[image_turn(q + tuned)] for q in questions],
                   [Image.open(png).convert("RGB")] * 2, max_new_tokens=4)
    out = capsys.readouterr().out
    assert all(f"> {reply}\n" in out for reply in replies) and "not asked" not in out
    Image.new("L", (5, 5)).save(tmp_path / "tiny.jpg")
    assert main(["chat", "--model", str(tmp_path / "assistant"), "--image",
                 str(tmp_path / "tiny.jpg"), "what colour is the circle?",
                 "--max-new-tokens", "2"]) == 0


def test_instruction_batches_are_seeded_by_step_and_one_task_each(processor):
    from minimllm.assistant import TASKS, InstructionBatches, task_messages
    from minimllm.vision import to_pixel_values

    all_scenes = scenes(12, seed=2)
    pixels = to_pixel_values([render_scene(s) for s in all_scenes])
    mixture = {"describe": 1, "vqa": 1, "conversation": 1, "text": 1}
    batches = InstructionBatches(processor, all_scenes, pixels, mixture, batch_size=4, seed=7)
    again = InstructionBatches(processor, all_scenes, pixels, mixture, batch_size=4, seed=7)
    for step in range(6):
        a, b = batches(step), again(step)
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
        assert ("pixel_values" in a) == bool((a["input_ids"] == IMAGE_TOKEN_ID).any())
        assert ((a["labels"] != -100).sum(1) > 0).all(), "every row has assistant tokens"
    rng = np.random.default_rng(0)
    for task in TASKS:
        messages = task_messages(task, all_scenes[0], rng)
        assert messages[-1]["role"] == "assistant"
        assert (IMAGE_TOKEN in messages[0]["content"]) == (task != "text")
    with pytest.raises(ValueError, match="mixture"):
        InstructionBatches(processor, all_scenes, pixels, {"pictures": 1.0})
    with pytest.raises(ValueError, match="unknown task"):
        task_messages("sing", all_scenes[0], rng)


def test_the_text_task_writes_every_pair_and_answers_as_the_vqa_task():
    from minimllm.assistant import LOOK_PROMPT, task_messages
    from minimllm.data import HELDOUT_PAIRS

    scene = sample_scene(np.random.default_rng(0), exclude_pairs=HELDOUT_PAIRS)
    chats = [task_messages("text", scene, np.random.default_rng(k), LOOK_PROMPT, "described")
             for k in range(200)]
    held = [f"{c} {s}" for c, s in HELDOUT_PAIRS]
    assert sum(any(p in reply["content"] for p in held) for _, reply in chats) > 20
    for user, reply in chats:  # a fresh scene, its caption restated before the answer
        caption = user["content"].split(". ")[0]
        assert reply["content"].startswith(caption + "; ") and ", so " in reply["content"]
    short = task_messages("text", scene, np.random.default_rng(0))[1]["content"]
    assert ";" not in short and ", so" not in short  # short answers stay bare


def test_minimllm_assistant_exits_non_zero_below_the_targets(monkeypatch):
    import minimllm.assistant
    from minimllm.cli import main

    for passed, code in ((False, 1), (True, 0)):
        monkeypatch.setattr(minimllm.assistant, "main_job",
                            lambda quick, seed, p=passed: {"passed": p})
        assert main(["assistant", "--quick"]) == code


def test_heldout_phrasings_ask_the_same_scenes_in_wordings_no_training_text_uses():
    from minimllm.assistant import heldout_phrasings
    from minimllm.data import QTYPES, make_questions

    rows = []
    for k, scene in enumerate(scenes(40, seed=7)):
        qtype = [t for t in QTYPES if t != "defect"][k % (len(QTYPES) - 1)]
        if qtype == "relation" and len(scene["objects"]) < 2:
            qtype = "count"
        rows.append({**scene, "defects": [], "qtype": qtype, "question": "q", "answer": "a",
                     "image": render_scene(scene)})
    asked = heldout_phrasings(rows, seed=1)
    training = " ".join(text_corpus(n_scenes=300, seed=0))
    twins = np.random.default_rng(1)  # the same draws in the training phrasings
    for row, q in zip(rows, asked):
        twin = make_questions({"objects": row["objects"], "defects": []}, twins, [row["qtype"]])[0]
        assert q["qtype"] == row["qtype"] and q["image"] is row["image"]
        assert q["answer"] == twin["answer"] and q["question"] != twin["question"]
        assert q["question"] not in training


def test_blind_vqa_shows_the_model_an_empty_scene(processor, monkeypatch):
    import minimllm.evaluate as evaluate
    from minimllm.data import BACKGROUND_RGB

    seen = {}

    def fake_chat(model, processor, conversations, images, **kw):
        seen["images"] = images
        return ["red"] * len(conversations)

    monkeypatch.setattr(evaluate, "chat", fake_chat)
    rows = [{"image": render_scene(s), "question": "what colour is the circle?",
             "answer": "red", "qtype": "color"} for s in scenes(3)]
    evaluate.evaluate_vqa(None, processor, rows)
    def colours(im):
        return {tuple(c) for c in np.asarray(im).reshape(-1, 3)}

    assert all(len(colours(im)) > 1 for im in seen["images"]), "the real images"
    scores, _ = evaluate.evaluate_vqa(None, processor, rows, blind=True)
    assert scores["overall"] == 1.0
    for im, row in zip(seen["images"], rows):
        assert im.size == row["image"].size and colours(im) == {BACKGROUND_RGB}


def test_yes_probability_reads_where_the_reply_answers(tokenizer, processor):
    from minimllm.evaluate import yes_probability

    torch.manual_seed(1)
    lm = LMConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=4, n_kv_heads=2,
                  ffn_dim=64, max_seq_len=128)
    model = MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=lm, projector="c_abstractor",
                            num_image_tokens=4)).eval()
    images = [render_scene(s) for s in scenes(2)]
    asked = [image_turn("is there a red circle in the image?")] * 2
    prefixes = ["", "a large red circle in the top left, so"]
    p = yes_probability(model, processor, [[m] for m in asked], images, prefixes)
    yes_no = {lead: [processor.tokenizer(lead + w, add_special_tokens=False).input_ids[0]
                     for w in ("yes", "no")] for lead in ("", " ")}
    for i, (prefix, lead) in enumerate(zip(prefixes, ("", " "))):
        # the same probability read from a whole conversation, teacher-forced
        reply = f"{prefix} yes" if prefix else "yes"
        batch = processor([[asked[i], {"role": "assistant", "content": reply}]], [images[i]])
        ids = batch["input_ids"][0].tolist()
        at = ids.index(yes_no[lead][0]) - 1  # the position that predicts the answer
        with torch.no_grad():
            logits = model(batch["input_ids"], batch["pixel_values"]).logits[0, at]
        want = logits[yes_no[lead]].softmax(-1)[0].item()
        assert p[i] == pytest.approx(want, abs=1e-5)


def test_length_buckets_give_the_padded_batch_loss_and_gradients(tokenizer, processor):
    from minimllm.assistant import InstructionBatches, chat_loss, length_buckets
    from minimllm.tokenizer import PAD_ID
    from minimllm.vision import to_pixel_values

    torch.manual_seed(0)
    model = MLLM(MLLMConfig(vision=ViTConfig(**VIT), lm=LMConfig(vocab_size=len(tokenizer),
                 dim=32, n_layers=2, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=512),
                 num_image_tokens=4, projector="c_abstractor")).train()
    all_scenes = scenes(16, seed=3)
    pixels = to_pixel_values([render_scene(s) for s in all_scenes])
    batches = InstructionBatches(processor, all_scenes, pixels, {"describe": 1, "text": 1},
                                 batch_size=6, seed=1)
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(batch, buckets):
        model.zero_grad(set_to_none=True)
        loss = chat_loss(model, batch, buckets=buckets)
        loss.backward()
        return loss.item(), [torch.zeros_like(p) if p.grad is None else p.grad for p in params]

    tasks = set()
    for step in range(4):
        batch = batches(step)
        tasks.add("pixel_values" in batch)
        groups = length_buckets(batch, 3)
        lengths = (batch["input_ids"] != PAD_ID).sum(1)
        assert sum(len(g["input_ids"]) for g, _ in groups) == len(batch["input_ids"])
        assert sum(n for _, n in groups) == int((batch["labels"][:, 1:] != -100).sum())
        for group, _ in groups:  # cut to its longest row, no row cut short
            assert group["input_ids"].shape[1] == int((group["input_ids"] != PAD_ID).sum(1).max())
            if "pixel_values" in batch:  # each row keeps its own image
                rows = [next(i for i in range(len(lengths)) if torch.equal(
                    batch["input_ids"][i, :len(r)], r)) for r in group["input_ids"]]
                assert torch.equal(group["pixel_values"], batch["pixel_values"][rows])
        padded_loss, padded_grads = loss_and_grads(batch, 1)
        for buckets in (2, 3, 6):
            loss, grads = loss_and_grads(batch, buckets)
            assert loss == pytest.approx(padded_loss, abs=1e-5)
            for a, b in zip(padded_grads, grads):
                torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    assert tasks == {True, False}, "batches with and without images were both checked"
    with pytest.raises(ValueError, match="buckets"):
        length_buckets(batch, 0)


def test_report_lines_give_each_target_its_verdict_and_blind_baselines():
    from minimllm.assistant import AssistantConfig, missed_targets, report_lines

    by_type = {"overall": 0.91, "color": 0.95, "shape": 0.79}
    pope = {s: {"accuracy": 0.9, "f1": 0.88, "yes_ratio": 0.7, "auroc": 0.95,
                "always_yes_f1": 0.667} for s in ("random", "popular", "adversarial")}
    results = {"vqa_test": by_type, "vqa_heldout": {"overall": 0.81},
               "vqa_compositional": {"overall": 0.5},
               "vqa_blind": {"answer prior": {"overall": 0.37, "color": 0.2, "shape": 0.26},
                             "no image": {"overall": 0.3, "color": 0.1, "shape": 0.2}},
               "prior_heldout": {"overall": 0.36}, "prior_compositional": {"overall": 0.33},
               "caption": {"accuracy": 0.95, "position": 1.0, "position_precision": 0.9,
                           "hallucinated": 0.05}, "caption_blind": {"accuracy": 0.0}, "pope": pope}
    targets = json.loads(json.dumps(AssistantConfig().targets))  # as metrics.json holds them
    lines = report_lines(results, targets)
    assert len(lines) == len(targets) == 7
    missed = [line for line in lines if "MISSED" in line]
    assert [line.split(" (")[0] for line in missed] == [
        "VQA accuracy of the weakest type", "VQA accuracy on unseen colour-shape pairs",
        "POPE adversarial yes-ratio"]
    assert len(missed_targets(results, targets)) == 3
    assert "shape" in lines[1] and "answer prior 0.260, no image 0.200" in lines[1]
    assert "(target 0.35-0.65: MISSED)" in lines[6] and "target 0.9: met" in lines[0]
    assert all("target" not in line for line in report_lines(results))  # none set: no verdicts


def test_pope_scores_the_generated_answer_checked_by_hand(monkeypatch):
    """Four adversarial POPE items (two one-object scenes), replies written by hand: POPE's
    verdict is the reply's final answer, never P(yes)."""
    import minimllm.evaluate as evaluate

    rows = []
    for seed in (4, 5):
        scene = sample_scene(seed, n_objects=1, image_size=32)
        rows.append({"objects": scene["objects"], "defects": [], "image": render_scene(scene)})
    replies = {  # question -> the assistant's reply (the truth in the comment)
        "is there a white diamond in the image?": "a white diamond; ..., so yes",       # yes
        "is there a white triangle in the image?": "a white diamond; ..., so no",       # no
        "is there a purple triangle in the image?": "a purple triangle; ..., so no",    # yes
        "is there a purple cross in the image?": "a purple triangle; ..., so no"}       # no
    asked = []

    def scripted_chat(model, processor, conversations, images, max_new_tokens):
        asked.extend(c[0]["content"] for c in conversations)
        return [replies[c[0]["content"].removeprefix("<image> ").removesuffix(" look.")]
                for c in conversations]

    monkeypatch.setattr(evaluate, "chat", scripted_chat)
    # P(yes) says the opposite of every reply: it must not change the verdicts
    monkeypatch.setattr(evaluate, "yes_probability",
                        lambda model, processor, conversations, images, prefixes: [
                            0.1 if r.endswith("yes") else 0.9 for r in scripted_chat(
                                None, None, conversations, images, 0)])
    m = evaluate.pope(None, None, rows, "adversarial", seed=0, format_prompt=" look.")
    assert sorted(asked[:4]) == sorted(f"<image> {q} look." for q in replies)  # format prompt
    # tp 1 (white diamond), tn 2 (white triangle, purple cross), fn 1 (purple triangle); read
    # from P(yes) > 0.5 instead, accuracy would be 0.25
    assert m["n"] == 4 and m["accuracy"] == 0.75 and m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 / 3) and m["yes_ratio"] == 0.25
    assert m["always_yes_f1"] == pytest.approx(2 / 3)
    assert m["auroc"] == pytest.approx(0.25)  # P(yes): yes items 0.1, 0.9; no items 0.9, 0.9
