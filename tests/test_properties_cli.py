"""Property-based tests of the `minimllm` command: whatever file, folder or number a user hands
it, a mistake ends in one message that names it (SystemExit with text, or argparse's usage error
naming the option), never a traceback from PIL, json, safetensors or nbformat, and never a silent
success."""
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from minimllm import cli


def png(size: tuple[int, int], mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


# what a user may pass as an image: any bytes, or a real picture of any size and mode
image_files = st.binary(max_size=200) | st.builds(
    png, st.tuples(st.integers(1, 80), st.integers(1, 80)),
    st.sampled_from(["RGB", "L", "RGBA", "P"]))
# what may sit in a model folder's config.json: any text, any JSON object
configs = st.text(max_size=60) | st.dictionaries(
    st.sampled_from(["vision", "lm", "projector", "num_image_tokens", "cross_attention_layers",
                     "model_type", "x"]),
    st.none() | st.integers(-3, 3) | st.text(max_size=5) | st.lists(st.integers(-2, 5), max_size=3),
    max_size=5).map(json.dumps)


def exits_naming(argv: list[str], *names: str) -> str:
    """Run the command; it must stop with SystemExit whose text names one of `names`."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    message = str(exit_.value.code)
    assert exit_.value.code not in (0, None), message
    assert any(name in message for name in names), message
    return message


@given(image_files)
def test_chat_names_the_image_or_the_model_folder_it_cannot_use(content):
    with tempfile.TemporaryDirectory() as folder:
        image, model = Path(folder) / "picture.png", Path(folder) / "no-model-here"
        image.write_bytes(content)
        exits_naming(["chat", "--image", str(image), "--model", str(model), "what is this?"],
                     "picture.png", "no-model-here")


@given(configs, st.binary(max_size=64), st.sampled_from(["chat", "export"]))
# found by this test: an empty config.json (a json error that named nothing), a corrupt weights
# file (a RuntimeError traceback), settings that build no model (an AttributeError from inside)
@example("", b"", "chat")
@example("{}", b"", "export")
@example('{"vision": null}', b"", "chat")
def test_a_broken_model_folder_is_named_whatever_its_config_holds(config, weights, command):
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "broken-model"
        model.mkdir()
        (model / "config.json").write_text(config)
        (model / "model.safetensors").write_bytes(weights)
        image = Path(folder) / "picture.png"
        image.write_bytes(png((64, 64), "RGB"))
        argv = (["chat", "--image", str(image), "--model", str(model), "hi"] if command == "chat"
                else ["export", str(model), str(Path(folder) / "out")])
        exits_naming(argv, "broken-model")


@given(st.text(min_size=1, max_size=12).filter(lambda s: not s.strip().lstrip("-+").isdigit()))
def test_a_seed_that_is_not_an_integer_is_a_usage_error_naming_the_option(text):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--quick", f"--seed={text}"])
    assert exit_.value.code == 2  # argparse: the usage line and "--seed: invalid int value"


@given(st.integers(-5, 0))
@example(0)  # found by this test: grading's ValueError came out as a traceback
def test_grade_refuses_a_timeout_that_is_not_positive(timeout):
    exits_naming(["grade", "exercises/00_setup_and_data.ipynb", f"--timeout={timeout}"],
                 "timeout")


@given(st.binary(max_size=100))
def test_grade_names_a_notebook_it_cannot_read(content):
    with tempfile.TemporaryDirectory() as folder:
        notebook = Path(folder) / "homework.ipynb"
        notebook.write_bytes(content)
        exits_naming(["grade", str(notebook), "--source",
                      "solutions/00_setup_and_data.ipynb"], "homework.ipynb")
