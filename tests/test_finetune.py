"""Part 5 (finetuning an ImageNet ResNet): the reference package, its hidden checks and the checkpoint check.

- the reference passes every check; each plausible wrong answer fails exactly the checks aimed at it
  (the table below, asserted over every check); correct variants written differently pass;
- each check is a probe and a verdict: the reference's records pass the verdicts, forged records (every
  parameter reported trainable, a zero conv1 kernel, a changed kept layer, moved batch-norm statistics,
  one learning rate for both groups) fail them;
- the reference works end to end with genrekit: weights files (written here, no network), training
  stages through ``train.fit`` with frozen batch norms, checkpoint round trip;
- a checkpoint of the wrong architecture, a head of the wrong size, a weights record with the wrong
  hash: one-line reasons naming the file.
"""

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from autograder.checks import common, part5
from autograder.course import ASSIGNMENT, SOLUTIONS
from autograder.release import strip_solutions
from genrekit import checkpoint, config, resnet, train

sys.path.insert(0, str(SOLUTIONS / ASSIGNMENT))  # the reference package, for this test module only
from genre import finetune as ft  # noqa: E402

sys.path.pop(0)

CHECKS = {  # check -> the name of the package member it is given
    "check_adapt_first_conv": "adapt_resnet",
    "check_adapt_head": "adapt_resnet",
    "check_log_mel_scaler": "LogMelScaler",
    "check_fit_scaler": "fit_scaler",
    "check_set_trainable": "set_trainable",
    "check_batchnorm_frozen": "freeze_batchnorm_stats",
    "check_param_groups_members": "param_groups",
    "check_param_groups_lr": "param_groups",
}
REFERENCE = {member: getattr(ft, member) for member in set(CHECKS.values())}
_results: dict = {}


def failures(package: dict) -> dict[str, str]:
    """{check name: its message} for every check the package fails (results cached per function)."""
    failed = {}
    for check, member in CHECKS.items():
        fn = package[member]
        key = (check, fn)
        if key not in _results:
            try:
                getattr(part5, check)(fn)
                _results[key] = None
            except AssertionError as err:
                _results[key] = str(err)
        if _results[key] is not None:
            failed[check] = _results[key]
    return failed


def test_reference_passes_every_check():
    assert failures(REFERENCE) == {}


# --- plausible wrong answers, one per mistake ------------------------------------------------------

def adapt_random_conv1(net, n_classes=config.NUM_CLASSES):
    """The RGB kernels discarded: a new, randomly initialised 1-channel convolution."""
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(512, n_classes)
    return net


def adapt_one_channel(net, n_classes=config.NUM_CLASSES):
    """The kernels of the red channel only."""
    w = net.conv1.weight.detach()[:, :1].clone()
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.conv1.weight = nn.Parameter(w)
    net.fc = nn.Linear(512, n_classes)
    return net


def adapt_mean(net, n_classes=config.NUM_CLASSES):
    """The RGB kernels averaged (scales every activation by 1/3)."""
    w = net.conv1.weight.detach().mean(dim=1, keepdim=True)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.conv1.weight = nn.Parameter(w.clone())
    net.fc = nn.Linear(512, n_classes)
    return net


def adapt_rebuild(net, n_classes=config.NUM_CLASSES):
    """A whole new 1-channel network: every pretrained weight thrown away."""
    return resnet.resnet18(in_channels=1, num_classes=n_classes)


def adapt_keep_head(net, n_classes=config.NUM_CLASSES):
    """conv1 folded, but the ImageNet head (1000 outputs) kept."""
    w = net.conv1.weight.detach().sum(dim=1, keepdim=True)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.conv1.weight = nn.Parameter(w)
    return net


def adapt_slice_head(net, n_classes=config.NUM_CLASSES):
    """conv1 folded, the head made of the first n_classes rows of the ImageNet classifier."""
    w = net.conv1.weight.detach().sum(dim=1, keepdim=True)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.conv1.weight = nn.Parameter(w)
    fc = nn.Linear(512, n_classes)
    with torch.no_grad():
        fc.weight.copy_(net.fc.weight[:n_classes])
        fc.bias.copy_(net.fc.bias[:n_classes])
    net.fc = fc
    return net


def adapt_returns_nothing(net, n_classes=config.NUM_CLASSES):
    """Right in place, but returns None (ResNetClassifier would hold None): fails both adapt checks."""
    adapt_in_place_slices(net, n_classes)


def set_trainable_never_freezes(model, stage):
    """Stage one with everything unfrozen: only turns requires_grad on, never off."""
    parts = {"head": [model.net.fc], "last": [model.net.fc, model.net.layer4], "all": [model]}[stage]
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(True)
    return model


def set_trainable_forgets_layer4(model, stage):
    """'last' trains the head only."""
    for p in model.parameters():
        p.requires_grad_(stage == "all")
    for p in model.net.fc.parameters():
        p.requires_grad_(True)
    return model


def bn_untouched(module):
    """Frozen weights, but batch norms left in training mode: their running statistics drift."""
    return module


def bn_all_eval(module):
    """Every batch norm in eval mode, the trainable ones too."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    return module


def bn_momentum_zero(module):
    """Statistics kept by momentum 0, but frozen batch norms still normalise with batch statistics."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad:
            m.momentum = 0.0
    return module


def groups_one_lr(model, head_lr, backbone_lr):
    """One learning rate for everything."""
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": head_lr}]


def groups_swapped(model, head_lr, backbone_lr):
    """The two learning rates swapped."""
    head = list(model.net.fc.parameters())
    rest = [p for p in model.parameters() if p.requires_grad and all(p is not h for h in head)]
    return [{"params": head, "lr": backbone_lr}, {"params": rest, "lr": head_lr}]


def groups_with_frozen(model, head_lr, backbone_lr):
    """Frozen parameters handed to the optimizer too."""
    head = list(model.net.fc.parameters())
    rest = [p for p in model.parameters() if all(p is not h for h in head)]
    return [{"params": head, "lr": head_lr}, {"params": rest, "lr": backbone_lr}]


def fit_scaler_on_test(model, splits):
    """Scaling statistics taken from the test set."""
    model.scaler.fit(splits["test"])


def fit_scaler_on_everything(model, splits):
    """Scaling statistics of all splits together."""
    model.scaler.fit(np.concatenate([np.asarray(x) for x in splits.values()]))


class ScalerPerBand(ft.LogMelScaler):
    """One mean and std per mel band instead of one for the channel."""
    def __init__(self):
        nn.Module.__init__(self)
        self.register_buffer("mean", torch.zeros(config.N_MELS, 1))
        self.register_buffer("std", torch.ones(config.N_MELS, 1))

    def fit(self, x):
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        self.mean = x.mean(dim=(0, 1, 3))[:, None]
        self.std = x.std(dim=(0, 1, 3))[:, None]
        return self


class ScalerAttributes(ft.LogMelScaler):
    """Statistics as plain attributes: right numbers, but the checkpoint does not carry them."""
    def __init__(self):
        nn.Module.__init__(self)
        self.mean, self.std = torch.zeros(()), torch.ones(())

    def fit(self, x):
        x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        self.mean, self.std = x.mean().float(), x.std().float()
        return self


class ScalerBackwards(ft.LogMelScaler):
    """Un-standardises: x * std + mean."""
    def forward(self, x):
        return x * self.std + self.mean


WRONG = {  # variant -> (the member it replaces, the exact set of checks it must fail)
    "conv1 random re-init": (adapt_random_conv1, {"check_adapt_first_conv"}),
    "conv1 from one channel": (adapt_one_channel, {"check_adapt_first_conv"}),
    "conv1 averaged": (adapt_mean, {"check_adapt_first_conv"}),
    "whole net re-initialised": (adapt_rebuild, {"check_adapt_first_conv"}),
    "head not replaced (1000 outputs)": (adapt_keep_head, {"check_adapt_head"}),
    "adapted net not returned": (adapt_returns_nothing, {"check_adapt_first_conv", "check_adapt_head"}),
    "head sliced from ImageNet fc": (adapt_slice_head, {"check_adapt_head"}),
    "everything unfrozen in stage one": (set_trainable_never_freezes, {"check_set_trainable"}),
    "layer4 not unfrozen": (set_trainable_forgets_layer4, {"check_set_trainable"}),
    "BN statistics updated while frozen": (bn_untouched, {"check_batchnorm_frozen"}),
    "BN of trainable layers frozen too": (bn_all_eval, {"check_batchnorm_frozen"}),
    "BN frozen by momentum 0": (bn_momentum_zero, {"check_batchnorm_frozen"}),
    "one learning rate for all groups": (groups_one_lr, {"check_param_groups_lr"}),
    "learning rates swapped": (groups_swapped, {"check_param_groups_lr"}),
    "frozen parameters in the groups": (groups_with_frozen, {"check_param_groups_members"}),
    "scaling statistics from the test set": (fit_scaler_on_test, {"check_fit_scaler"}),
    "scaling statistics from all splits": (fit_scaler_on_everything, {"check_fit_scaler"}),
    "scaler per mel band": (ScalerPerBand, {"check_log_mel_scaler"}),
    "scaler statistics not buffers": (ScalerAttributes, {"check_log_mel_scaler"}),
    "scaler forward inverted": (ScalerBackwards, {"check_log_mel_scaler"}),
}


def _member(fn) -> str:
    if isinstance(fn, type):
        return "LogMelScaler"
    name = fn.__name__
    for prefix, member in (("adapt_", "adapt_resnet"), ("set_trainable_", "set_trainable"),
                           ("bn_", "freeze_batchnorm_stats"), ("groups_", "param_groups"), ("fit_scaler_", "fit_scaler")):
        if name.startswith(prefix):
            return member
    raise KeyError(name)


def test_each_wrong_answer_fails_exactly_its_checks():
    table = {variant: set(failures({**REFERENCE, _member(fn): fn})) for variant, (fn, _) in WRONG.items()}
    assert table == {variant: expected for variant, (_, expected) in WRONG.items()}


@pytest.mark.parametrize("variant, needle", [
    ("conv1 random re-init", "randomly initialised"), ("conv1 from one channel", "ONE colour channel"),
    ("conv1 averaged", "MEAN of the RGB"), ("whole net re-initialised", "randomly initialised"),
    ("head not replaced (1000 outputs)", "1000 ImageNet outputs"), ("head sliced from ImageNet fc", "FRESH"),
    ("everything unfrozen in stage one", "set_trainable(model, 'head'): only net.fc trains"),
    ("BN statistics updated while frozen", "frozen batch norm"), ("BN frozen by momentum 0", "is in training mode"),
    ("BN of trainable layers frozen too", "trainable batch norm"),
    ("one learning rate for all groups", "smaller backbone_lr"), ("frozen parameters in the groups", "frozen parameters"),
    ("scaling statistics from the test set", "TEST split"), ("scaling statistics from all splits", "all splits"),
    ("scaler per mel band", "one mean and one std"), ("scaler statistics not buffers", "register_buffer"),
    ("scaler forward inverted", "(x - mean) / std"),
])
def test_messages_name_the_mistake(variant, needle):
    fn = WRONG[variant][0]
    messages = failures({**REFERENCE, _member(fn): fn})
    assert any(needle in m for m in messages.values()), messages
    assert all("\n" not in m for m in messages.values())


# --- correct answers written differently ------------------------------------------------------------

def adapt_einsum_new_object(net, n_classes=config.NUM_CLASSES):
    """A deep copy, conv1 rebuilt with einsum and a Parameter, nothing returned in place."""
    import copy
    net = copy.deepcopy(net)
    conv = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    conv.weight = nn.Parameter(torch.einsum("oiyx->oyx", net.conv1.weight.detach())[:, None].clone())
    net.conv1, net.fc = conv, nn.Linear(net.fc.in_features, n_classes)
    return net


def adapt_in_place_slices(net, n_classes=config.NUM_CLASSES):
    """conv1 made with tuple arguments, the kernel filled by slice assignment of the three channels."""
    w = net.conv1.weight.detach()
    net.conv1 = nn.Conv2d(1, 64, (7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    with torch.no_grad():
        net.conv1.weight[:] = w[:, 0:1] + w[:, 1:2] + w[:, 2:3]
    net.fc = nn.Linear(512, n_classes, bias=True)
    return net


class ScalerUnbiased(nn.Module):
    """torch.std's default (n - 1) and buffers of shape (1, 1, 1, 1)."""
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 1, 1, 1))
        self.register_buffer("std", torch.ones(1, 1, 1, 1))

    def fit(self, x):
        x = torch.as_tensor(x)
        self.mean.fill_(x.mean().item())
        self.std.fill_(x.std().item())
        return self

    def forward(self, x):
        return (x - self.mean) / self.std


def fit_scaler_by_hand(model, splits):
    """Writes the training statistics into the buffers itself."""
    x = np.asarray(splits["train"], dtype=np.float64)
    model.scaler.mean.fill_(x.mean())
    model.scaler.std.fill_(x.std())


def set_trainable_by_name(model, stage):
    prefixes = {"head": ("net.fc.",), "last": ("net.fc.", "net.layer4."), "all": ("",)}[stage]
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(prefixes)


def bn_by_weight_flag(module):
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None and not m.weight.requires_grad:
            m.train(False)


def groups_generators_and_empty(model, head_lr, backbone_lr):
    """Generators for params, an empty backbone group kept, extra keys."""
    fc = set(model.net.fc.parameters())
    return [{"params": (p for p in model.net.fc.parameters() if p.requires_grad), "lr": head_lr, "weight_decay": 0.0},
            {"params": [p for p in model.parameters() if p.requires_grad and p not in fc], "lr": backbone_lr}]


@pytest.mark.parametrize("fn", [adapt_einsum_new_object, adapt_in_place_slices, ScalerUnbiased, fit_scaler_by_hand,
                                set_trainable_by_name, bn_by_weight_flag, groups_generators_and_empty])
def test_correct_variants_pass(fn):
    member = "LogMelScaler" if isinstance(fn, type) else _member(fn)
    assert failures({**REFERENCE, member: fn}) == {}


def test_the_stubs_fail_every_check_and_import_cleanly(tmp_path):
    """The student version (solution regions stripped) imports, and every check reports the stub."""
    source = (SOLUTIONS / ASSIGNMENT / "genre" / "finetune.py").read_text()
    stub_path = tmp_path / "finetune_stub.py"
    stub_path.write_text(strip_solutions(source, "finetune.py"))
    spec = importlib.util.spec_from_file_location("finetune_stub", stub_path)
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    failed = failures({member: getattr(stub, member) for member in REFERENCE})
    assert set(failed) == set(CHECKS)
    assert all("NotImplementedError" in m for m in failed.values()), failed
    for name in ("adapt_resnet", "LogMelScaler", "fit_scaler", "set_trainable", "freeze_batchnorm_stats",
                 "param_groups"):
        doc = getattr(stub, name).__doc__
        assert doc and len(doc) > 300, f"{name} lost its contract docstring"


# --- probes and verdicts: the grader judges plain records in its own process ----------------------------

def _judge_forged(check: str, record: dict, **changes) -> str | None:
    """The verdict on the reference's record with some values replaced, as a student's code could send."""
    forged = dict(record)
    for key, change in changes.items():
        forged[key.replace("__", ".")] = change(forged[key.replace("__", ".")]) if callable(change) else change
    return common.judge(f"part5.{check}", common.encode(forged))


def test_reference_records_pass_and_forged_records_fail():
    records = {}
    for check, member in CHECKS.items():
        probe = common.CHECKS[f"part5.{check}"]
        assert probe.student == (f"genre.finetune.{member}",)
        raw = probe.record(REFERENCE[member])
        assert len(raw) < 300_000, (check, len(raw))
        assert common.judge(probe.name, raw) is None, check
        records[check] = common.decode(raw)
    names = [n for n, _ in ft.ResNetClassifier().named_parameters()]
    assert list(part5._model_names()) == names
    imagenet_rows = part5._imagenet_like(52).fc.weight.detach().numpy()[:5].astype(np.float64)
    bn = [n for n, m in ft.ResNetClassifier().named_modules() if isinstance(m, nn.BatchNorm2d)]
    forged = {  # check -> [(changes, what the verdict must say)]
        "check_adapt_first_conv": [
            ({"weight": np.zeros((64, 1, 7, 7))}, "randomly initialised"),
            ({"weight": lambda w: w / 3}, "MEAN of the RGB"),
            ({"out": np.zeros_like}, "stride 2 and padding 3"),
            ({"kept_digests": lambda d: d ^ np.uint64(1)}, "must keep the pretrained layers"),
            ({"kept_names": lambda k: k[1:], "kept_shapes": lambda s: s[1:], "kept_digests": lambda d: d[1:]},
             "changed or missing: bn1.weight"),
            ({"in_channels": 3}, "1 input channel"),
        ],
        "check_adapt_head": [
            ({"52__weight": imagenet_rows}, "FRESH"),
            ({"53__out_features": 1000}, "1000 ImageNet outputs"),
            ({"52__requires_grad": [False, False]}, "require gradients"),
            ({"52__requires_grad": []}, "require gradients"),
            ({"53__logits": np.zeros((3, 5))}, "expected (3, 8)"),
        ],
        "check_log_mel_scaler": [
            ({"mean": np.zeros(()), "std": np.ones(())}, "LogMelScaler.fit: mean"),
            ({"y": np.negative}, "(x - mean) / std"),
            ({"state_keys": []}, "register_buffer"),
        ],
        "check_fit_scaler": [({"1__mean": float(part5._fit_splits(1)["test"].mean(dtype=np.float64))}, "TEST split"),
                             ({"0__std": np.array(1.0)}, "expected the training")],
        "check_set_trainable": [({f"on{i}": names for i in range(len(part5.SET_STAGES))}, "only net.fc trains"),
                                ({"on1": ["net.fc.weight", "net.fc.bias"]}, "'last'): only net.fc and net.layer4 train")],
        "check_batchnorm_frozen": [
            ({f"head__{n}__training": True for n in bn}, "is in training mode"),
            ({"head__net__bn1__stats": lambda s: s + 1}, "net.bn1 updated its running statistics"),
            ({"last__net__bn1__training": 1}, "could not be read"),
            ({"all__net__layer1__0__bn2__training": False}, "trainable batch norm net.layer1.0.bn2"),
            ({"switched": ["net.layer1"]}, "switched modules to training mode"),
        ],
        "check_param_groups_members": [({"head__members": [names]}, "frozen parameters"),
                                       ({"all__members": [names[:-1]]}, "in no group"),
                                       ({"last__members": lambda m: m + [["net.fc.bias"]]}, "more than one group"),
                                       ({"all__members": [names + [None]]}, "not parameters of the model")],
        "check_param_groups_lr": [({"last__lrs": [part5.HEAD_LR] * 2}, "smaller backbone_lr"),
                                  ({"all__lrs": [None, None]}, "its own 'lr'")],
    }
    assert set(forged) == set(CHECKS)
    for check, cases in forged.items():
        for changes, needle in cases:
            message = _judge_forged(check, records[check], **changes)
            assert message is not None and needle in message and "\n" not in message, (check, changes.keys(), message)
    # what the probe could not do fails too, in one line: the student's error, a malformed or missing record
    assert common.judge("part5.check_set_trainable", common.encode({"stage0_error": "your code raised KeyError: 'net'"})) \
        == "your code raised KeyError: 'net'"
    without = {k: v for k, v in records["check_set_trainable"].items() if k != "on3"}
    assert "could not be checked" in _judge_forged("check_set_trainable", without)
    assert common.judge("part5.check_adapt_head", b"not a record") == "the check's probe returned no usable record"


# --- the reference package with genrekit --------------------------------------------------------------

@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random-init ResNet18 and ResNet34 state_dicts in torchvision's format (3 channels, 1000 classes)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    r18 = resnet.resnet18()
    with torch.no_grad():
        for m in r18.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    torch.save(r18.state_dict(), folder / "resnet18-test.pth")
    torch.save(resnet.resnet34().state_dict(), folder / "resnet34-test.pth")
    return {"resnet18": folder / "resnet18-test.pth", "resnet34": folder / "resnet34-test.pth", "net": r18}


def test_load_backbone_folds_in_student_code_and_records_the_file(weights):
    model = ft.ResNetClassifier("resnet18")
    assert model.start_weights == {"name": "random", "sha256": None}
    record = ft.load_backbone(model, weights["resnet18"])
    src = weights["net"].state_dict()
    got = model.net.state_dict()
    assert torch.equal(got["conv1.weight"], src["conv1.weight"].sum(dim=1, keepdim=True))
    assert all(torch.equal(got[k], v) for k, v in src.items() if not k.startswith(("conv1.", "fc.")))
    assert got["fc.weight"].shape == (config.NUM_CLASSES, 512)
    assert record == model.start_weights == {"name": "resnet18-test.pth", "sha256": ft.sha256_of(weights["resnet18"])}
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 1, config.N_MELS, 126)).shape == (2, config.NUM_CLASSES)
        assert model.embed(torch.randn(2, 1, config.N_MELS, 126)).shape == (2, resnet.EMBEDDING_DIM)


def test_load_backbone_refuses_bad_files_in_one_line(weights, tmp_path, monkeypatch):
    model = ft.ResNetClassifier("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad_hash = tmp_path / "resnet18-f37072fd.pth"
    bad_hash.write_bytes(weights["resnet18"].read_bytes())
    cases = [(bad_hash, "does not start with f37072fd"), (weights["resnet34"], "not a resnet18 state_dict"),
             (tmp_path / "nothing.pth", "not found")]
    monkeypatch.setenv(resnet.WEIGHTS_ENV, str(tmp_path / "empty"))
    cases.append(("imagenet", "get_resnet_weights"))
    for path, needle in cases:
        with pytest.raises(resnet.WeightsError) as err:
            ft.load_backbone(model, path)
        assert needle in str(err.value) and "\n" not in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.start_weights["name"] == "random"


def test_two_stages_with_train_fit_keep_frozen_batch_norms():
    """Stage 'head' through genrekit.train.fit: only fc moves, no BN statistic moves; 'last': layer4's do."""
    torch.manual_seed(0)
    x = torch.randn(12, 1, config.N_MELS, 40) * 10 - 40
    y = torch.arange(12) % config.NUM_CLASSES
    model = ft.ResNetClassifier("resnet18")
    ft.fit_scaler(model, {"train": x, "test": x + 100})
    assert abs(float(model.scaler.mean) - float(x.mean())) < 1e-3
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def moved(prefix):
        now = model.state_dict()
        return {k for k in now if k.startswith(prefix) and not torch.equal(now[k], start[k])}

    ft.set_trainable(model, "head")
    opt = torch.optim.AdamW(ft.param_groups(model, 1e-3, 1e-4))
    train.fit(model, (x, y), epochs=1, batch_size=4, optimizer=opt, progress=False, device="cpu")
    assert moved("net.") == {"net.fc.weight", "net.fc.bias"}
    ft.set_trainable(model, "last")
    groups = ft.param_groups(model, 1e-3, 1e-4)
    assert sorted(g["lr"] for g in groups) == [1e-4, 1e-3]
    train.fit(model, (x, y), epochs=1, batch_size=4, optimizer=torch.optim.AdamW(groups), progress=False, device="cpu")
    assert moved("net.layer4.0.bn1.running_mean") and not moved("net.layer1.") and not moved("net.bn1.")
    assert not moved("scaler.")
    ft.set_trainable(model, "all")
    model.train()
    assert all(m.training for m in model.modules())


def test_checkpoint_round_trip_carries_the_scaler(tmp_path, weights):
    model = ft.ResNetClassifier("resnet18")
    ft.load_backbone(model, weights["resnet18"])
    model.scaler.fit(np.random.default_rng(0).normal(-40, 12, (4, 1, config.N_MELS, 20)))
    path = checkpoint.save(tmp_path / "part5_resnet.pt", model, model_kwargs={"arch": "resnet18"},
                           extra={"start_weights": model.start_weights})
    back = checkpoint.load_model(path, cls=ft.ResNetClassifier)
    x = torch.randn(2, 1, config.N_MELS, 50) * 10 - 30
    with torch.no_grad():
        assert torch.equal(back(x), model.eval()(x))
    pooled = ft.ResNetClassifier("resnet18", input_pool=2)
    pooled.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(pooled.eval()(x), model(nn.functional.avg_pool2d(x, 2)), atol=1e-5)
    assert part5.verify_checkpoint(path, ft.ResNetClassifier) == {
        "arch": "resnet18", "n_classes": config.NUM_CLASSES, "start": "other", "weights_file": "resnet18-test.pth"}


def test_bad_input_raises_one_line_value_errors():
    net = resnet.resnet18(in_channels=1)
    cases = [
        (lambda: ft.adapt_resnet(net), "net"), (lambda: ft.adapt_resnet(resnet.resnet18(), 0), "n_classes"),
        (lambda: ft.LogMelScaler().fit(np.array([1.0, np.nan])), "x_train"),
        (lambda: ft.LogMelScaler().fit(np.full((2, 3), -80.0)), "x_train"),
        (lambda: ft.LogMelScaler().fit(np.zeros((0, 1, 96, 4))), "x_train"),
        (lambda: ft.fit_scaler(ft.ResNetClassifier(), {"test": np.ones(3)}), "splits"),
        (lambda: ft.set_trainable(ft.ResNetClassifier(), "head+last"), "stage"),
        (lambda: ft.param_groups(ft.ResNetClassifier(), 0.0, 1e-4), "head_lr"),
        (lambda: ft.param_groups(ft.ResNetClassifier(), 1e-3, float("nan")), "backbone_lr"),
        (lambda: ft.ResNetClassifier("resnet50"), "arch"),
        (lambda: ft.ResNetClassifier(input_pool=0), "input_pool"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value).startswith(name + ":") and "\n" not in str(err.value), str(err.value)


# --- the checkpoint-level check ------------------------------------------------------------------------

class Always18(ft.ResNetClassifier):
    """A student's class that ignores ``arch`` and always builds a ResNet18."""
    def __init__(self, arch="resnet18", n_classes=config.NUM_CLASSES):
        super().__init__("resnet18", n_classes)


class KeepsImageNetHead(ft.ResNetClassifier):
    """A student's class whose adapt_resnet kept the 1000-class head."""
    def __init__(self, arch="resnet18", n_classes=config.NUM_CLASSES):
        nn.Module.__init__(self)
        self.arch, self.n_classes, self.start_weights = arch, n_classes, dict(ft.RANDOM)
        self.scaler = ft.LogMelScaler()
        self.net = adapt_keep_head(resnet.resnet(arch), n_classes)


def _save(tmp_path, model, kwargs, start=None, name="part5_resnet.pt"):
    extra = {"start_weights": start} if start is not None else {}
    return checkpoint.save(tmp_path / name, model, model_kwargs=kwargs, extra=extra)


def test_verify_checkpoint_facts_and_reasons(tmp_path):
    r18 = ft.ResNetClassifier("resnet18")
    good = _save(tmp_path, r18, {"arch": "resnet18", "n_classes": 8}, ft.RANDOM, "good.pt")
    assert part5.verify_checkpoint(good, ft.ResNetClassifier) == {
        "arch": "resnet18", "n_classes": 8, "start": "random", "weights_file": "random"}
    part5.check_checkpoint(good, ft.ResNetClassifier)
    name = resnet.WEIGHT_FILES["resnet18"]
    prefix = name.split("-")[1].split(".")[0]
    imagenet = _save(tmp_path, r18, {"arch": "resnet18"}, {"name": name, "sha256": prefix + "0" * 56}, "imagenet.pt")
    assert part5.verify_checkpoint(imagenet, ft.ResNetClassifier)["start"] == "imagenet"
    assert part5.verify_checkpoint(_save(tmp_path, r18, {}, None, "norecord.pt"), ft.ResNetClassifier)["start"] == "unknown"

    r34 = _save(tmp_path, ft.ResNetClassifier("resnet34"), {"arch": "resnet34"}, ft.RANDOM, "r34.pt")
    mislabelled = _save(tmp_path, ft.ResNetClassifier("resnet34"), {"arch": "resnet18"}, ft.RANDOM, "mislabelled.pt")
    ten = _save(tmp_path, ft.ResNetClassifier("resnet18", n_classes=10), {"n_classes": 10}, ft.RANDOM, "ten.pt")
    wide = _save(tmp_path, KeepsImageNetHead(), {}, ft.RANDOM, "wide.pt")
    bad_hash = _save(tmp_path, r18, {}, {"name": name, "sha256": "0" * 64}, "badhash.pt")
    other_arch = _save(tmp_path, r18, {}, {"name": resnet.WEIGHT_FILES["resnet34"],
                                           "sha256": resnet.WEIGHT_FILES["resnet34"].split("-")[1][:8]}, "otherarch.pt")
    expected = [
        (r34, Always18, "r34.pt: the weights are a resnet34 (3, 4, 6, 3 blocks per stage) but Always18(**{'arch': "
                        "'resnet34'}) builds a resnet18 (2, 2, 2, 2)"),
        (mislabelled, ft.ResNetClassifier, "mislabelled.pt: the weights are a resnet34"),
        (ten, ft.ResNetClassifier, "ten.pt: the head has 10 outputs, expected 8 (one per genre)"),
        (wide, KeepsImageNetHead, "wide.pt: the head has 1000 outputs, expected 8"),
        (good, KeepsImageNetHead, "good.pt: the checkpoint's head has 8 outputs but KeepsImageNetHead(**{'arch': "
                                  "'resnet18', 'n_classes': 8}) builds 1000"),
        (bad_hash, ft.ResNetClassifier, f"badhash.pt: started from {name}, whose recorded SHA-256 0000000000000000... "
                                        f"does not start with {prefix}"),
        (other_arch, ft.ResNetClassifier, "otherarch.pt: started from resnet34-"),
        (tmp_path / "missing.pt", ft.ResNetClassifier, "missing.pt: checkpoint not found"),
    ]
    for path, cls, needle in expected:
        with pytest.raises(checkpoint.CheckpointError) as err:
            part5.verify_checkpoint(path, cls)
        assert needle in str(err.value) and "\n" not in str(err.value), str(err.value)
        with pytest.raises(AssertionError) as err:
            part5.check_checkpoint(path, cls)
        assert needle in str(err.value)
