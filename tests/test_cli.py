"""The `minimllm` command: checkpoints never overwrite the references in quick mode and show
progress bars; bad names fail; --help lists every command with an example."""
import pytest

from minimllm import cli


def test_quick_checkpoints_go_to_artifacts(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    assert cli.main(["checkpoints", "--quick", "--only", "lm"]) == 0
    out = tmp_path / "data" / "artifacts" / "quick-checkpoints" / "lm"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (tmp_path / "data" / "checkpoints").exists()
    printed = capsys.readouterr()
    assert "lm: saved to" in printed.out
    # progress bars: the command's and the training loop's
    assert "checkpoints: 100%" in printed.err and "train: 100%" in printed.err


def test_unknown_checkpoint_name_is_an_error():
    with pytest.raises(SystemExit, match="unknown checkpoint"):
        cli.main(["checkpoints", "--only", "nonsense"])


def test_env_prints_the_report(capsys):
    assert cli.main(["env"]) == 0
    assert "torch" in capsys.readouterr().out


def test_help_lists_every_command_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert commands == set(cli.COMMANDS) and {"train", "chat", "export", "grade"} <= commands
    examples = [line.split()[1] for line in text.splitlines()
                if line.startswith("  minimllm ")]
    assert sorted(examples) == sorted(commands)  # one example line per command
    for name in commands:
        with pytest.raises(SystemExit):
            cli.main([name, "--help"])
        assert f"example:\n  minimllm {name}" in capsys.readouterr().out



def test_the_gpu_preset_refuses_a_cpu_and_quick_mode_means_the_same_from_env(monkeypatch):
    import minimllm.finetune
    import minimllm.utils

    runs = []
    monkeypatch.setattr(minimllm.finetune, "gpu_job", lambda quick, seed: runs.append(quick))
    monkeypatch.setattr(minimllm.utils, "get_device", lambda: minimllm.utils.torch.device("cpu"))
    monkeypatch.setenv("MINIMLLM_QUICK", "0")
    with pytest.raises(SystemExit, match="no CUDA GPU here.*--quick.*--force"):
        cli.main(["train", "--preset", "gpu"])
    assert runs == []  # refused before anything ran
    assert cli.main(["train", "--preset", "gpu", "--force"]) == 0
    monkeypatch.setenv("MINIMLLM_QUICK", "1")  # the variable is the flag
    assert cli.main(["train", "--preset", "gpu"]) == 0
    seeds = []
    monkeypatch.setattr(minimllm.finetune, "gpu_job", lambda quick, seed: seeds.append(seed))
    cli.main(["train", "--preset", "gpu", "--seed", "3"])
    assert seeds == [3], "--seed reaches the GPU job"
    assert runs == [False, True]


def test_the_demo_trains_the_assistant_and_prints_the_lines_of_its_metrics(monkeypatch, tmp_path,
                                                                            capsys):
    import json

    from minimllm.assistant import report_lines

    monkeypatch.setenv("MINIMLLM_HOME", str(tmp_path))
    code = cli.main(["demo", "--quick"])
    saved = json.loads((tmp_path / "data" / "artifacts" / "assistant-quick" / "metrics.json")
                       .read_text())
    printed = capsys.readouterr().out
    assert "Shapes World:" in printed and "preview saved to" in printed
    lines = report_lines(saved, saved["settings"]["targets"])
    assert len(lines) == 7 and all(line in printed.splitlines() for line in lines)
    assert code == (0 if saved["passed"] else 1)
