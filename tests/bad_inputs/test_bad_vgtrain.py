"""vgtrain's bad inputs: crafted pickles, damaged checkpoints, resumes that do not fit, options out of range.

Every case asserts the exact outcome: the one-line message (and exit code 1, no traceback, for the
real CLI run as a subprocess), that a crafted pickle's marker file never appears, that nothing is
written for a refused command, and that a resumed run ends with the uninterrupted run's weights.
Trained runs are shared by the module (tiny: 32-px images, batches of 4, 2 iterations per epoch).
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from vgdata.evalset import eval_set
from vgdata.groups import GroupsConfig, split_groups
from vgtrain import checkpoint
from vgtrain.checkpoint import weights_digest
from vgtrain.compare import CompareError, compare
from vgtrain.data import ManifestError
from vgtrain.errors import CheckpointError, VgtrainError
from vgtrain.eval import EvalConfig, EvalError, load_model, run_eval
from vgtrain.fit import FitConfig, FitError, fit
from vgtrain.model import MissingExtraError, ModelError, build_model

ROOT = Path(__file__).resolve().parents[2]
VGTRAIN = [sys.executable, "-c", "from cli import vgtrain_app; vgtrain_app()"]
RANDOM_INIT = "the ResNet18 backbone is randomly initialised: pass --backbone-weights FILE"
pytestmark = pytest.mark.filterwarnings("ignore:the .* backbone is randomly initialised")

SMALL = {"image_size": 32, "batch_size": 4, "iterations_per_epoch": 2, "groups_num": 2, "num_workers": 0}
SMALL |= {"device": "cpu", "fc_output_dim": 32, "infer_batch_size": 32, "val_image_size": 32}


def vgtrain(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*VGTRAIN, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def one_line_error(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """The only error line of a CLI run that exited 1 without a traceback; every fragment is in it."""
    assert res.returncode == 1, (res.returncode, res.stdout[-1500:], res.stderr[-3000:])
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and all(line.startswith(("error: ", "warning: ")) for line in lines), res.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def fit_args(manifests: tuple[str, str], out: Path, **kw) -> list[str]:
    groups, val = manifests
    options = {**SMALL, "groups": groups, "val": val, "out": out, **kw}
    return [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def config(manifests: tuple[str, str], out: Path, **kw) -> FitConfig:
    groups, val = manifests
    return FitConfig(**{**SMALL, "groups": groups, "val": val, "out": str(out), "epochs_num": 1, **kw})


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------- crafted pickles


class Touch:
    """Unpickling this calls ``pathlib.Path.touch(marker)``: what a crafted checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class Open:
    """Unpickling this calls ``open(marker, "w")``, creating the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


WRITERS = {
    "torch.save": lambda obj, path: torch.save(obj, path),
    "pickle-protocol-2": lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2)),
    "pickle-default": lambda obj, path: path.write_bytes(pickle.dumps(obj)),
}


def write_evil(path: Path, marker: Path, writer: str = "torch.save", payload: type = Touch, key: str = "rng") -> Path:
    WRITERS[writer]({key: payload(marker)}, path)
    return path


def unpickled_unsafely(path: Path) -> None:
    """Unpickle ``path`` with plain pickle (the zip's data.pkl for torch.save files), as an unsafe loader would."""
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("payload", [Touch, Open], ids=["Path.touch", "open"])
def test_crafted_pickles_are_live(tmp_path, writer, payload):
    """The crafted files used below do run code when unpickled unsafely: the refusals are real."""
    marker = tmp_path / "marker"
    unpickled_unsafely(write_evil(tmp_path / "evil.pt", marker, writer, payload))
    assert marker.exists()


# ---------------------------------------------------------------- shared runs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here and in the CLI subprocesses: the same arithmetic in both (the resumed run is compared
    bit for bit), and tiny tensors on a busy 2-core machine run several times faster than with two spinning threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manifests(tiny_catalog) -> tuple[str, str]:
    g = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2))
    v = eval_set(tiny_catalog, name="val_v2", database="database", queries="queries_v2")
    return g.manifest, v.manifest


@pytest.fixture(scope="module")
def runs(manifests, tmp_path_factory):
    """full: 2 epochs in one go (library); part: 1 epoch by the CLI, then resumed to 2 by the CLI;
    base: a copy of part after its first epoch, read-only for the cases (checked at the end)."""
    root = tmp_path_factory.mktemp("vgtrain_runs")
    fit(config(manifests, root / "full", epochs_num=2))
    first = vgtrain("fit", *fit_args(manifests, root / "part", epochs_num=1))
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(root / "part", root / "base")
    resumed = vgtrain("fit", *fit_args(manifests, root / "part", epochs_num=2, resume=root / "part"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    before = snapshot(root / "base")
    yield {"root": root, "full": root / "full", "part": root / "part", "base": root / "base", "first": first,
           "resumed": resumed}  # fmt: skip
    assert snapshot(root / "base") == before, "a case wrote into the shared run"


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file in ``folder`` (through symlinks)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def scratch(runs, tmp_path) -> Path:
    """The 1-epoch run as a folder of symlinks to its files; a case replaces a file with :func:`fresh` first."""
    folder = tmp_path / "run"
    folder.mkdir()
    for p in runs["base"].iterdir():
        (folder / p.name).symlink_to(p)
    return folder


def fresh(path: Path) -> Path:
    """``path`` with its symlink to the shared run removed, ready to be written."""
    path.unlink(missing_ok=True)
    return path


@pytest.mark.slow
def test_cli_resume_reaches_the_uninterrupted_weights(runs):
    a, b = tensors(runs["full"] / "last.pt"), tensors(runs["part"] / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = tensors(runs["full"] / "last.state.pt"), tensors(runs["part"] / "last.state.pt")
    for ca, cb in zip(sa["classifiers"], sb["classifiers"], strict=True):
        assert torch.equal(ca["weight"], cb["weight"])
    assert "resumed from" in runs["resumed"].stdout and "best val R@1" in runs["resumed"].stdout


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    """Python's, numpy's and torch's generators draw the same after save + weights_only load + restore."""
    import random

    from vgtrain.checkpoint import load_file, rng_state, set_rng_state

    outer = rng_state()
    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    np.random.normal()  # numpy caches a Gaussian: the state has has_gauss = 1
    torch.save({"rng": rng_state()}, tmp_path / "s.pt")
    expected = (random.random(), np.random.normal(), np.random.randint(1 << 30), torch.rand(3))
    set_rng_state(load_file(tmp_path / "s.pt", what="state", advice="")["rng"])
    got = (random.random(), np.random.normal(), np.random.randint(1 << 30), torch.rand(3))
    set_rng_state(outer)
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])


@pytest.mark.slow
def test_random_init_warning_is_one_clean_line(runs):
    stderr = runs["first"].stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {RANDOM_INIT} with torchvision ImageNet weights; nothing is downloaded at run time"]
    assert "UserWarning" not in stderr and "fit.py" not in stderr and "build_model(" not in stderr
    assert [line for line in stderr.splitlines() if line.strip()] == warnings


@pytest.mark.slow
def test_meta_rewrite_is_atomic_and_names_the_saved_weights(runs):
    for run in ("full", "part"):
        folder = runs[run]
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
        meta = json.loads((folder / "last.meta.json").read_text())
        model = build_model(**meta["model_args"])
        model.load_state_dict(tensors(folder / "last.pt"))
        assert meta["epoch"] == 1 and meta["rank_weight_digests"] == [weights_digest(model)]


def test_no_unsafe_load_remains_in_the_repository():
    unsafe = "weights_only=" + "False"  # spelled in two parts so that this file does not match itself
    files = []
    for folder, subfolders, names in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if d not in (".venv", ".git", "node_modules", "__pycache__")]
        files += [Path(folder, n) for n in names if n.endswith((".py", ".toml", ".cfg", ".sh", ".ipynb"))]
    assert Path(__file__) in files and len(files) > 50
    assert [str(p) for p in files if unsafe in p.read_text(errors="replace")] == []
    for p in (ROOT / "vgtrain").glob("*.py"):
        for line in p.read_text().splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line.split("torch.load(", 1)[1], (p, line)


# ---------------------------------------------------------------- safe loading: the CLI refuses crafted pickles


@pytest.mark.slow
def test_cli_fit_resume_refuses_a_crafted_state_file(manifests, scratch, tmp_path):
    marker = tmp_path / "marker"
    write_evil(fresh(scratch / "last.state.pt"), marker)
    res = vgtrain("fit", *fit_args(manifests, scratch, epochs_num=2, resume=scratch))
    one_line_error(
        res,
        f"training state {scratch / 'last.state.pt'} is not a plain checkpoint: it refers to the Python object "
        "getattr, and vgtrain loads only tensors, numbers and strings from files, never code",
    )
    assert not marker.exists()


@pytest.mark.slow
def test_cli_eval_refuses_a_crafted_weights_file(manifests, scratch, tmp_path):
    marker = tmp_path / "marker"
    for name in ("best.pt", "last.pt"):
        write_evil(fresh(scratch / name), marker, "pickle-protocol-2", Open, key="backbone.0.weight")
    res = vgtrain("eval", "--weights", scratch, "--eval-set", manifests[1], "--out", tmp_path / "e",
                  "--num-workers", 0, "--device", "cpu")  # fmt: skip
    one_line_error(
        res, f"weights {scratch / 'best.pt'} is not a plain checkpoint: it refers to the Python object io.open"
    )
    assert not marker.exists() and not (tmp_path / "e").exists()


@pytest.mark.slow
def test_cli_backbone_weights_refuses_a_crafted_file(manifests, tmp_path):
    marker = tmp_path / "marker"
    evil = write_evil(tmp_path / "resnet18.pth", marker, "torch.save", Touch, key="conv1.weight")
    res = vgtrain("fit", *fit_args(manifests, tmp_path / "r", backbone_weights=evil))
    one_line_error(
        res, f"backbone weights file {evil} is not a plain checkpoint: it refers to the Python object getattr"
    )
    assert not marker.exists()


# ---------------------------------------------------------------- safe loading: every writer, every file


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("target", ["last.state.pt", "last.pt", "backbone-weights", "eval-file"])
@pytest.mark.slow
def test_crafted_pickle_is_refused_and_runs_nothing(manifests, scratch, tmp_path, writer, target):
    """What `fit --resume` (checkpoint.load), `--backbone-weights` (build_model) and `eval --weights` (load_model) read."""
    marker = tmp_path / "marker"
    if target == "backbone-weights":
        evil = write_evil(tmp_path / "w.pth", marker, writer, Touch, key="conv1.weight")
        with pytest.raises(CheckpointError, match=f"backbone weights file {re.escape(str(evil))} is not a plain"):
            build_model("ResNet18", 32, backbone_weights=evil)
    elif target == "eval-file":
        evil = write_evil(tmp_path / "model.pt", marker, writer, Open, key="backbone.0.weight")
        with pytest.raises(CheckpointError, match=f"weights {re.escape(str(evil))} is not a plain checkpoint"):
            load_model(EvalConfig(weights=str(evil), eval_set=str(manifests[1]), out=str(tmp_path / "e")))
    else:
        write_evil(fresh(scratch / target), marker, writer, Touch)
        what = "training state" if target == "last.state.pt" else "weights"
        with pytest.raises(CheckpointError, match=f"{what} {re.escape(str(scratch / target))} is not a plain"):
            checkpoint.load(scratch, "last")
    assert not marker.exists()


@pytest.mark.slow
def test_a_state_file_with_numpy_objects_is_refused(manifests, scratch):
    """What an earlier vgtrain wrote (numpy's RNG state as an ndarray): refused, not unpickled."""
    state = tensors(scratch / "last.state.pt")
    state["rng"]["numpy"] = np.random.get_state()
    torch.save(state, fresh(scratch / "last.state.pt"))
    with pytest.raises(CheckpointError, match=r"is not a plain checkpoint: it refers to the Python object numpy"):
        fit(config(manifests, scratch, epochs_num=2, resume=str(scratch)))


# ---------------------------------------------------------------- damaged checkpoints


DAMAGES = {
    "truncated": (lambda b: b[: len(b) // 2], "is truncated or corrupt (RuntimeError: PytorchStreamReader failed"),
    "empty": (lambda b: b"", "is truncated or corrupt (EOFError"),
    "header-overwritten": (
        lambda b: b"\xff" * 64 + b[64:],
        "is not a plain checkpoint (damaged, or not written by torch.save: Unsupported operand",
    ),
    "text": (lambda b: b"not a checkpoint\n", "is not a plain checkpoint (damaged, or not written by"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("target", ["last.state.pt", "last.pt"])
@pytest.mark.slow
def test_damaged_checkpoint_is_one_line(scratch, damage, target):
    how, message = DAMAGES[damage]
    data = (scratch / target).read_bytes()
    fresh(scratch / target).write_bytes(how(data))
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(scratch, "last")  # what `fit --resume` reads
    assert str(scratch / target) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_cli_eval_of_a_truncated_file_is_one_line(manifests, runs, tmp_path):
    broken = tmp_path / "model.pt"
    broken.write_bytes((runs["base"] / "last.pt").read_bytes()[:5000])
    res = vgtrain("eval", "--weights", broken, "--backbone", "ResNet18", "--eval-set", manifests[1], "--out",
                  tmp_path / "e", "--device", "cpu")  # fmt: skip
    one_line_error(res, f"weights {broken} is truncated or corrupt", "pass a run folder written by `vgtrain fit`")


@pytest.mark.parametrize(
    "fault, message",
    [
        ("no-state", "last.state.pt is missing: the run cannot be resumed without its training state"),
        ("meta-truncated", "last.meta.json is not readable JSON"),
        ("meta-not-a-run", "last.meta.json lacks epoch or config"),
        ("state-of-tensors-only", "lacks model_optimizer, classifiers, classifier_optimizers, rng"),
        ("state-without-classifiers", "does not fit the model and schedule its last.meta.json describes (ValueError"),
        ("weights-of-another-model", "does not fit the model and schedule its last.meta.json describes (ModelError"),
    ],
)
@pytest.mark.slow
def test_resume_from_a_damaged_run_is_one_line(manifests, scratch, fault, message):
    if fault == "no-state":
        (scratch / "last.state.pt").unlink()
    elif fault == "meta-truncated":
        text = (scratch / "last.meta.json").read_text()
        fresh(scratch / "last.meta.json").write_text(text[:100])
    elif fault == "meta-not-a-run":
        fresh(scratch / "last.meta.json").write_text("[1, 2, 3]\n")
    elif fault == "state-of-tensors-only":
        torch.save({"w": torch.zeros(3)}, fresh(scratch / "last.state.pt"))
    elif fault == "state-without-classifiers":
        state = tensors(scratch / "last.state.pt")
        torch.save(state | {"classifiers": state["classifiers"][:1]}, fresh(scratch / "last.state.pt"))
    else:
        torch.save(build_model("ResNet18", 64).state_dict(), fresh(scratch / "last.pt"))
    before = snapshot(scratch)
    with pytest.raises(CheckpointError) as e:
        fit(config(manifests, scratch, epochs_num=2, resume=str(scratch)))
    assert message in str(e.value) and str(scratch) in str(e.value) and "\n" not in str(e.value)
    assert snapshot(scratch) == before  # nothing written


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_resume_from_a_folder_without_a_run(manifests, tmp_path, folder):
    run = tmp_path / folder
    if folder == "empty":
        run.mkdir()
    expected = "does not exist" if folder == "missing" else "no checkpoint 'last' in"
    with pytest.raises(CheckpointError, match=f"{expected}.*pass the --out folder of an earlier `vgtrain fit`"):
        fit(config(manifests, tmp_path / "out", epochs_num=2, resume=str(run)))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- resume checks what it resumes


MISMATCHES = {
    "lr": (1e-3, "--lr is 0.001 but the run used 1e-05"),
    "classifiers_lr": (0.1, "--classifiers-lr is 0.1 but the run used 0.01"),
    "batch_size": (8, "--batch-size is 8 but the run used 4"),
    "image_size": (48, "--image-size is 48 but the run used 32"),
    "iterations_per_epoch": (3, "--iterations-per-epoch is 3 but the run used 2"),
    "seed": (1, "--seed is 1 but the run used 0"),
    "classifier_init": ("imprint", "--classifier-init is 'imprint' but the run used 'random'"),
    "hue": (0.1, "--hue is 0.1 but the run used 0.5"),
    "random_resized_crop": (0.2, "--random-resized-crop is 0.2 but the run used 0.5"),
    "fc_output_dim": (64, "--fc-output-dim is 64 but the run used 32"),
    "backbone": ("ResNet50", "--backbone is 'ResNet50' but the run used 'ResNet18'"),
    "train_all_layers": (True, "--train-all-layers is True but the run used False"),
    "groups_num": (1, "--groups-num is 1 but the run used 2"),
}


@pytest.mark.parametrize("name", sorted(MISMATCHES))
@pytest.mark.slow
def test_resume_refuses_another_setting(manifests, runs, name):
    value, message = MISMATCHES[name]
    base = runs["base"]
    with pytest.raises(FitError) as e:
        fit(config(manifests, base, epochs_num=2, resume=str(base), **{name: value}))
    text = str(e.value)
    assert text.startswith(f"cannot resume {base}: {message}.") and f"see {base}/last.meta.json" in text


@pytest.mark.slow
def test_resume_refuses_another_groups_manifest(manifests, runs, tiny_catalog):
    other = split_groups(GroupsConfig(tiny_catalog, min_images_per_class=1, groups_num=2, m=12)).manifest
    base = runs["base"]
    with pytest.raises(FitError) as e:
        fit(replace(config(manifests, base, epochs_num=2, resume=str(base)), groups=other))
    assert f"cannot resume {base}: --groups {other} is another groups manifest (fingerprint" in str(e.value)
    assert f"than the run's {manifests[0]} (" in str(e.value)


@pytest.mark.slow
def test_resume_refuses_fewer_epochs_than_trained(manifests, runs):
    part = runs["part"]  # 2 epochs trained
    with pytest.raises(FitError, match=r"--epochs-num 1 ends before the 2 epoch\(s\) already trained"):
        fit(config(manifests, part, epochs_num=1, resume=str(part)))


@pytest.mark.slow
def test_cli_resume_mismatch_is_one_line_and_writes_nothing(manifests, runs):
    base = runs["base"]
    before = snapshot(base)
    res = vgtrain("fit", *fit_args(manifests, base, epochs_num=2, resume=base, lr=0.001, batch_size=8))
    one_line_error(
        res, f"cannot resume {base}: --batch-size is 8 but the run used 4; --lr is 0.001 but the run used 1e-05"
    )
    assert snapshot(base) == before


# ---------------------------------------------------------------- options and manifests at the door


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("batch_size", 0, "--batch-size must be an integer >= 1, got 0"),
        ("image_size", -32, "--image-size must be an integer >= 1, got -32"),
        ("lr", float("nan"), "--lr must be a finite number > 0, got nan"),
        ("classifiers_lr", -0.01, "--classifiers-lr must be a finite number > 0, got -0.01"),
        ("hue", 0.7, "--hue must be in [0, 0.5] (turns), got 0.7"),
        ("random_resized_crop", 1.0, "--random-resized-crop must be in [0, 1) (area fraction dropped), got 1.0"),
        ("brightness", float("inf"), "--brightness must be a finite number >= 0, got inf"),
        ("num_workers", -1, "--num-workers must be >= 0, got -1"),
        ("classifier_init", "zeros", "--classifier-init must be random or imprint, got 'zeros'"),
    ],
)
def test_fit_option_out_of_range_is_refused_before_any_work(manifests, tmp_path, option, value, message):
    with pytest.raises(FitError) as e:
        fit(config(manifests, tmp_path / "r", **{option: value}))
    assert str(e.value) == message
    assert not (tmp_path / "r").exists()


def test_unknown_backbone_and_device(manifests, tmp_path):
    with pytest.raises(ModelError, match="backbone is set to 'resnet18' but it must be one of ResNet18, ResNet50"):
        fit(config(manifests, tmp_path / "r", backbone="resnet18"))
    with pytest.raises(VgtrainError, match="--device must be auto, cpu or cuda, got 'gpu'"):
        fit(config(manifests, tmp_path / "r", device="gpu"))
    if not torch.cuda.is_available():
        with pytest.raises(VgtrainError, match="--device cuda: this torch .* sees no CUDA device; use --device cpu"):
            run_eval(EvalConfig(weights="random", backbone="ResNet18", eval_set=manifests[1], out=str(tmp_path / "e"),
                                device="cuda"))  # fmt: skip
    assert not (tmp_path / "r").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("image_size", 0, "--image-size must be >= 1 (pixels) or left out, got 0"),
        ("batch_size", 0, "--batch-size must be >= 1, got 0"),
        ("num_preds_to_save", -1, "--num-preds-to-save must be >= 0, got -1"),
        ("index", "hnsw", "--index must be flat, ivfpq or both, got 'hnsw'"),
    ],
)
@pytest.mark.slow
def test_eval_option_out_of_range(manifests, runs, tmp_path, option, value, message):
    cfg = EvalConfig(weights=str(runs["base"]), eval_set=manifests[1], out=str(tmp_path / "e"), device="cpu")
    with pytest.raises(EvalError) as e:
        run_eval(replace(cfg, **{option: value}))
    assert str(e.value) == message and not (tmp_path / "e").exists()


@pytest.mark.slow
def test_manifest_of_the_other_kind(manifests, runs, tmp_path):
    groups, val = manifests
    with pytest.raises(ManifestError, match=f"eval manifest {re.escape(groups)} lacks columns role, idx, positives"):
        run_eval(EvalConfig(weights=str(runs["base"]), eval_set=groups, out=str(tmp_path / "e"), device="cpu"))
    with pytest.raises(ManifestError, match=f"groups manifest {re.escape(str(val))} lacks columns"):
        fit(replace(config(manifests, tmp_path / "r"), groups=val))
    assert not (tmp_path / "e").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "weights, message",
    [
        ("empty-folder", "no best.pt or last.pt in"),
        ("missing-file", "weights not found:"),
        ("state-file", "last.state.pt does not hold a state dict (tensor names to tensors)"),
        ("meta-damaged", "last.meta.json is not readable JSON"),
        ("meta-missing", "best.pt has no best.meta.json beside it"),
    ],
)
@pytest.mark.slow
def test_eval_weights_that_cannot_be_used(manifests, scratch, tmp_path, weights, message):
    if weights == "empty-folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif weights == "missing-file":
        target = tmp_path / "nope.pt"
    elif weights == "state-file":
        target = scratch / "last.state.pt"
    elif weights == "meta-damaged":
        target = scratch / "last.pt"
        fresh(scratch / "last.meta.json").write_text("{")
    else:
        target = scratch
        (scratch / "best.meta.json").unlink()
    cfg = EvalConfig(
        weights=str(target), eval_set=manifests[1], out=str(tmp_path / "e"), device="cpu", backbone="ResNet18"
    )
    with pytest.raises(VgtrainError) as e:
        run_eval(cfg)
    assert message in str(e.value) and "\n" not in str(e.value) and not (tmp_path / "e").exists()


@pytest.mark.slow
def test_undecodable_image_in_a_worker_is_one_line(manifests, runs, tmp_path):
    """An eval image that fails in a DataLoader worker process: the worker's one line, not its traceback."""
    val = manifests[1]
    table = pq.read_table(val)
    meta = dict(table.schema.metadata)
    roots = json.loads(meta[b"vgdata.image_roots"])
    copy = Path(shutil.copytree(Path(val).parent.parent / roots["database"], tmp_path / "database"))
    db_rows = [p for r, p in zip(table["role"].to_pylist(), table["path"].to_pylist(), strict=True) if r == "database"]
    bad = copy / db_rows[0]
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    with pytest.raises(ManifestError) as e:  # the database read from the damaged copy (--image-root)
        run_eval(EvalConfig(weights=str(runs["base"]), eval_set=str(val), out=str(tmp_path / "e"), device="cpu",
                            image_size=32, num_workers=1, image_roots={"database": str(copy)}))  # fmt: skip
    assert str(e.value).startswith(f"cannot decode evaluation image {bad} (")
    assert "\n" not in str(e.value) and "Traceback" not in str(e.value)


def test_compare_options_at_the_door(tmp_path):
    with pytest.raises(CompareError, match="--resamples must be a positive integer, got 0"):
        compare(tmp_path, tmp_path, resamples=0)
    with pytest.raises(CompareError, match="--seed must be an integer >= 0, got -1"):
        compare(tmp_path, tmp_path, seed=-1)


@pytest.mark.parametrize(
    "cls", [ManifestError, FitError, EvalError, CompareError, ModelError, MissingExtraError, CheckpointError]
)
def test_user_errors_are_vgtrain_errors_not_value_errors(cls):
    """The CLI turns VgtrainError into one line; a ValueError that reaches it is a bug and keeps its traceback."""
    assert issubclass(cls, VgtrainError) and not issubclass(cls, ValueError) and cls("x").exit_code == 1
