"""The `minimllm` command: checkpoints never overwrite the references in quick mode;
bad names fail."""
import pytest

from minimllm import cli


def test_quick_checkpoints_go_to_artifacts(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    assert cli.main(["checkpoints", "--quick", "--only", "lm"]) == 0
    out = tmp_path / "data" / "artifacts" / "quick-checkpoints" / "lm"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (tmp_path / "data" / "checkpoints").exists()
    assert "lm: saved to" in capsys.readouterr().out


def test_unknown_checkpoint_name_is_an_error():
    with pytest.raises(SystemExit, match="unknown checkpoint"):
        cli.main(["checkpoints", "--only", "nonsense"])


def test_env_prints_the_report(capsys):
    assert cli.main(["env"]) == 0
    assert "torch" in capsys.readouterr().out
