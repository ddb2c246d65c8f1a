"""carbonmeter as `codecarbon` (opt-in), with the real clients that import CodeCarbon: Comet's
`auto_log_co2` and the HF Trainer's `report_to=["codecarbon"]`. Each runs in a fresh interpreter,
as the `.pth` hook acts at start-up; the hook is the file shipped in the wheel, processed by
`site.addsitedir` as `site-packages` would."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import rows_of

import carbonmeter

HOOK = Path(carbonmeter.__file__).parent.parent / "carbonmeter_codecarbon.pth"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("codecarbon") is not None,
    reason="a real CodeCarbon is installed here, which the drop-in never shadows",
)


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    (site_dir / HOOK.name).write_text(HOOK.read_text(encoding="utf-8"), encoding="utf-8")
    prologue = f"import site; site.addsitedir({str(site_dir)!r})\n"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CARBONMETER_", "COMET_"))}
    return subprocess.run(
        [sys.executable, "-c", prologue + code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env={
            **clean,
            "CARBONMETER_COUNTRY_ISO_CODE": "FRA",
            "COMET_LOGGING_CONSOLE": "ERROR",
            "COMET_ERROR_TRACKING_ENABLE": "false",
            "COMET_AUTO_LOG_ENV_HOST": "false",
            **env,
        },
    )


def test_without_the_variable_codecarbon_stays_missing(tmp_path: Path) -> None:
    result = run_python(
        "import importlib.util, sys\n"
        "print(importlib.util.find_spec('codecarbon'), 'carbonmeter' in sys.modules)",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "False"]


@pytest.mark.slow
def test_comet_auto_log_co2_uploads_carbonmeters_csv(tmp_path: Path) -> None:
    pytest.importorskip("comet_ml")
    code = """
import comet_ml
experiment = comet_ml.OfflineExperiment(
    offline_directory="comet", project_name="seed", log_env_host=False, auto_log_co2=True
)
sum(i * i for i in range(300_000))
experiment.end()
"""
    result = run_python(code, tmp_path, CARBONMETER_AS_CODECARBON="1")
    assert result.returncode == 0, result.stderr
    (archive,) = (tmp_path / "comet").glob("*.zip")
    with zipfile.ZipFile(archive) as bundle:
        messages = [json.loads(line) for line in bundle.read("messages.json").splitlines()]
        (upload,) = [
            m["payload"]
            for m in messages
            if m.get("type") == "file_upload" and m["payload"]["upload_type"] == "asset"
        ]
        text = bundle.read(upload["file_path"]).decode("utf-8")
    assert upload["additional_params"]["fileName"] == "emissions.csv"
    rows = list(csv.DictReader(text.splitlines()))
    assert list(rows[0])[: len(carbonmeter.CSV_COLUMNS)] == carbonmeter.CSV_COLUMNS
    (run,) = rows
    assert run["project_name"] == "seed"
    assert run["country_iso_code"] == "FRA"
    assert float(run["duration"]) > 0 and float(run["emissions"]) > 0


@pytest.mark.slow
def test_hf_report_to_codecarbon_trains_and_measures_with_carbonmeter(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("torch")
    code = """
import torch, transformers
config = transformers.BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    intermediate_size=32, max_position_embeddings=16,
)
ids = torch.randint(0, 50, (16, 8), generator=torch.Generator().manual_seed(0))
data = [{"input_ids": row, "labels": torch.tensor(0)} for row in ids]
args = transformers.TrainingArguments(
    output_dir="hf", num_train_epochs=1, per_device_train_batch_size=8, save_strategy="no",
    report_to=["codecarbon"], disable_tqdm=True, use_cpu=True,
)
trainer = transformers.Trainer(
    model=transformers.BertForSequenceClassification(config), args=args, train_dataset=data
)
trainer.train()
import codecarbon
from transformers.integrations import CodeCarbonCallback
ours = [c for c in trainer.callback_handler.callbacks if isinstance(c, CodeCarbonCallback)]
print(len(ours), codecarbon.__carbonmeter__, ours[0].tracker.final_emissions > 0)
"""
    result = run_python(code, tmp_path, CARBONMETER_AS_CODECARBON="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-3:] == ["1", "True", "True"]
    (run,) = rows_of(tmp_path / "hf" / "emissions.csv")
    assert run["cpu_method"] in {"rapl", "load_tdp", "constant"}
    assert float(run["duration"]) > 0


def test_a_real_codecarbon_is_never_shadowed_and_that_is_said_once(tmp_path: Path) -> None:
    real = tmp_path / "real" / "codecarbon"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n", encoding="utf-8")
    code = """
import carbonmeter, codecarbon
print(codecarbon.REAL, carbonmeter.use_as_codecarbon(), carbonmeter.use_as_codecarbon())
"""
    result = run_python(
        code, tmp_path, CARBONMETER_AS_CODECARBON="1", PYTHONPATH=str(tmp_path / "real")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]
    said = [line for line in result.stderr.splitlines() if "real CodeCarbon" in line]
    assert len(said) == 1 and said[0].startswith("carbonmeter: "), result.stderr


def test_use_as_codecarbon_serves_the_api_in_process(tmp_path: Path) -> None:
    code = """
import carbonmeter
assert carbonmeter.use_as_codecarbon() and carbonmeter.use_as_codecarbon()
import codecarbon
from codecarbon.emissions_tracker import OfflineEmissionsTracker
with codecarbon.EmissionsTracker(project_name="dropin") as tracker:
    sum(range(100_000))
print(codecarbon.EmissionsTracker is carbonmeter.EmissionsTracker,
      OfflineEmissionsTracker is carbonmeter.OfflineEmissionsTracker,
      tracker.final_emissions_data.project_name)
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "dropin"]
    (run,) = rows_of(tmp_path / "emissions.csv")
    assert run["project_name"] == "dropin"


def test_the_cores_log_lines_say_who_speaks(tmp_path: Path) -> None:
    # No logging configured: Python's last-resort handler prints the bare message.
    code = """
import carbonmeter
tracker = carbonmeter.EmissionsTracker(save_to_file=False)
tracker.start()
tracker.start()
tracker.stop()
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "carbonmeter: Already started tracking" in lines, result.stderr
    assert all(line.startswith("carbonmeter: ") for line in lines), result.stderr
