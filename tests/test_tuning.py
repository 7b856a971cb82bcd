"""focal_tutorial.tuning and focal_tutorial.ray_cluster: tune_focal's checks and the address checks (all before Ray
starts), the pick turned into hyperparameters, the verdict, one real 2-trial AutoMM search on a local Ray, the same search
on a Ray head this module starts (`ray start --head`, stopped by its own PIDs), and Ctrl-C. The search space's own tests
are in test_search_space.py.
Every Ray here keeps its files in a temporary folder of this module (RAY_TMPDIR), checked for trial files and deleted."""
import contextlib
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import psutil
import pytest

pytest.importorskip("autogluon.multimodal")
ray = pytest.importorskip("ray")
from ray import tune  # noqa: E402

from focal_tutorial.core import class_weights  # noqa: E402
from focal_tutorial.automm import check_hyperparameters  # noqa: E402
from focal_tutorial import ray_cluster  # noqa: E402
from focal_tutorial.ray_cluster import CONNECT_TIMEOUT, ray_session  # noqa: E402
from focal_tutorial.search_space import (ALPHA_KEY, GAMMA_KEY, alpha_choices, alpha_string,  # noqa: E402
                                         check_search_space, focal_search_space, parse_alpha)
from focal_tutorial.tuning import (MIN_TRIAL_SECONDS, _automm_default_gamma, _progress_callback,  # noqa: E402
                                   plot_trials, tune_focal, tuned_hyperparameters)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RAY_PROCESSES = ("raylet", "gcs_server")


def ray_processes() -> list:
    "Ray's daemons started from this test process: a local Ray runs them as children of the process that started it."
    return sorted(p.name() for p in psutil.Process().children(recursive=True) if p.name() in RAY_PROCESSES)


@pytest.fixture
def df():
    "Four classes, 8/4/2/1 rows: the rarest is class 3."
    labels = [0] * 8 + [1] * 4 + [2] * 2 + [3]
    return pd.DataFrame({"image": [f"{i}.png" for i in range(len(labels))], "label": labels})


@pytest.fixture
def space(df):
    return focal_search_space(df, gammas=[0, 2], alpha_methods=["none", "inverse"],
                              hyperparameters={"optim.max_epochs": 1})


@pytest.fixture(autouse=True)
def no_ray_left():
    "Every test leaves no Ray: none connected in this process."
    yield
    assert not ray.is_initialized()


def trial_files(folder) -> list:
    "Files under the `artifacts` folders of the Ray sessions in `folder`, where Ray Tune stages trial files."
    return sorted(str(f) for f in Path(folder).glob("**/session_*/artifacts/**/*") if f.is_file())


@pytest.fixture(scope="module", autouse=True)
def ray_tmpdir():
    "Ray's temporary folder for this module (short: Ray's socket paths must stay under 108 characters); no trial files may be left in it."
    folder = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = folder
    yield folder
    if before is None:
        del os.environ["RAY_TMPDIR"]
    else:
        os.environ["RAY_TMPDIR"] = before
    left = trial_files(folder)
    shutil.rmtree(folder, ignore_errors=True)
    assert left == [], f"trial files left in Ray's temporary folder: {left[:5]}"


def closed_port() -> int:
    "A port on 127.0.0.1 that nothing listens on."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def test_tuned_hyperparameters_recompute_weights_on_the_whole_training_set(df):
    h = tuned_hyperparameters({"gamma": 2.0, "alpha_method": "sqrt", "alpha": "1,1,1,1"}, df)
    assert h["optim.focal_loss.gamma"] == 2.0
    assert h["optim.focal_loss.alpha"] == pytest.approx(class_weights(df["label"], method="sqrt"), rel=1e-5)




W4 = "0.25,0.25,0.25,0.25"


def test_pos_label_output_of_the_package_passes_its_own_checks():
    "issue 17 item 11: with data.pos_label, focal_search_space's and tuned_hyperparameters' output need no classes=."
    d = pd.DataFrame({"image": list("abcdef"), "label": ["x", "y", "y", "y", "z", "z"]})
    base = {"data.pos_label": "x"}  # AutoMM's order: y, z, x
    space = focal_search_space(d, gammas=[0, 1], alpha_methods=["inverse"], hyperparameters=base)
    checked, n = check_search_space(space, d)
    assert n == 2 and parse_alpha(checked[ALPHA_KEY].categories[0]) == pytest.approx(
        class_weights(d["label"], classes=["y", "z", "x"]), rel=1e-5)
    h = tuned_hyperparameters({"gamma": 1.0, "alpha_method": "inverse", "alpha": None}, d, base)
    assert check_hyperparameters(h, d) == ["y", "z", "x"]  # no classes= needed
    assert h[ALPHA_KEY].to_dict() == pytest.approx(dict(zip("xyz", class_weights(d["label"], classes=list("xyz")))), rel=1e-5)
    with pytest.raises(ValueError, match="pos_label"):  # a hand-made list still needs its order confirmed
        check_search_space({**space, ALPHA_KEY: tune.choice([alpha_string([1, 1, 1])])}, d)


def test_effective_beta_of_the_search_is_kept():
    "issue 19: focal_search_space(beta=0.9) is named 'effective' (not 'custom'), and its beta is used again."
    d = pd.DataFrame({"image": [str(i) for i in range(40)], "label": [0] * 30 + [1] * 8 + [2] * 2})
    space = focal_search_space(d, gammas=[1], alpha_methods=["effective"], beta=0.9)
    checked, _ = check_search_space(space, d)
    from focal_tutorial.search_space import _tag_of
    assert _tag_of(checked[ALPHA_KEY])["names"] == {checked[ALPHA_KEY].categories[0]: "effective"}
    best = {"gamma": 1.0, "alpha_method": "effective", "alpha": checked[ALPHA_KEY].categories[0], "beta": 0.9}
    whole = pd.concat([d, d.assign(label=0)])  # the final fit's data: other counts, so other weights
    h = tuned_hyperparameters(best, whole)
    assert h[ALPHA_KEY] == pytest.approx(class_weights(whole["label"], method="effective", beta=0.9), rel=1e-5)
    assert h[ALPHA_KEY] != pytest.approx(class_weights(whole["label"], method="effective", beta=0.999), rel=1e-3)
    with pytest.raises(ValueError, match="beta=0.9"):
        tuned_hyperparameters(best, whole, beta=0.999)


@pytest.mark.parametrize("best, message", [
    ({"gamma": 1.0, "alpha_method": "Inverse", "alpha": W4}, "unknown alpha_method 'Inverse'"),
    ({"gamma": 1.0, "alpha": W4}, r"lacks \['alpha_method'\]"),
])
def test_tuned_hyperparameters_refuses_what_it_cannot_read(df, best, message):
    with pytest.raises(ValueError, match=message):
        tuned_hyperparameters(best, df)


def test_tuned_hyperparameters_keeps_a_custom_choice(df):
    h = tuned_hyperparameters({"gamma": 1.0, "alpha_method": "custom", "alpha": "0.1,0.2,0.3,0.4"}, df)
    assert h[ALPHA_KEY] == [0.1, 0.2, 0.3, 0.4]


def test_progress_line_of_an_alpha_only_space(capsys):
    "issue 19: a space without gamma printed f'{None:g}'; the trial's gamma is the fixed one (AutoMM's default)."
    from autogluon.multimodal.optim.losses.focal_loss import FocalLoss
    import inspect
    default = _automm_default_gamma()
    assert default == inspect.signature(FocalLoss).parameters["gamma"].default
    p = _progress_callback(1, "val_f1_macro", {W4: "none"}, 1, True, default)
    trial = SimpleNamespace(trial_id="t0", config={ALPHA_KEY: W4})
    p.on_trial_result(0, [], trial, {"val_f1_macro": 0.5})
    p.on_trial_complete(0, [], trial)
    assert p.rows[0]["gamma"] == default and p.rows[0]["alpha_method"] == "none"
    assert capsys.readouterr().out == f"trial 1/1: gamma {default:g}, alpha none: val_f1_macro 0.500 after 1 epoch\n"


def test_plot_trials_shows_every_method_and_the_pick():
    import matplotlib
    matplotlib.use("Agg")
    t = pd.DataFrame({"gamma": [0.0, 1.0, 2.0], "score": [0.5, 0.7, 0.6], "alpha_method": ["none", "mine", "none"],
                      "chosen": [False, True, False]})
    ax = plot_trials(t)
    assert [x.get_text() for x in ax.get_legend().get_texts()] == ["none", "mine", "picked"]
    assert ax.collections[-1].get_offsets().tolist() == [[1.0, 0.7]]  # the circle is on the picked trial
    with pytest.raises(ValueError, match=r"lacks the columns \['chosen'\]"):
        plot_trials(t.drop(columns="chosen"))



@pytest.mark.parametrize("kwargs, exc, message", [
    ({"num_trials": 5}, ValueError, "more than the 4 combinations"),
    ({"num_trials": 0}, ValueError, "num_trials"),
    ({"num_trials": 2, "time_limit": MIN_TRIAL_SECONDS - 1}, ValueError, "one trial"),
    ({"num_trials": 2, "time_limit": "60"}, TypeError, "time_limit"),
    ({"num_trials": 2, "searcher": "grid"}, ValueError, "searcher"),
    ({"num_trials": 2, "scheduler": "PBT"}, ValueError, "scheduler"),
    ({"num_trials": 2, "eval_metric": "balanced_accuracy"}, ValueError, "eval_metric"),
    ({"num_trials": 2, "resources_per_trial": {"gpus": 1}}, ValueError, "resources_per_trial"),
])
def test_tune_focal_errors_before_ray_starts(df, space, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        tune_focal(df, df, space, **kwargs)


def test_tuning_data_with_unknown_labels(df, space):
    with pytest.raises(ValueError, match="tuning_data has labels"):
        tune_focal(df, df.assign(label=df["label"] + 1), space, num_trials=2)


def test_short_time_limit_warns_before_ray_starts(df, space):
    with pytest.warns(UserWarning, match="before every trial"):
        with pytest.raises(ValueError, match="resources_per_trial"):  # stops right after the warning
            tune_focal(df, df, space, num_trials=4, time_limit=MIN_TRIAL_SECONDS * 2, resources_per_trial={"x": 1})


@pytest.mark.parametrize("via", ["a local Ray", "RAY_ADDRESS"])
def test_gpus_per_trial_without_num_cpus(df, space, monkeypatch, via):
    "resources_per_trial={'num_gpus': 1} without ray_address raised KeyError('num_cpus'): a local Ray now gets every CPU."
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a local Ray without GPUs, on any machine
    if via == "RAY_ADDRESS":
        address = f"127.0.0.1:{closed_port()}"
        monkeypatch.setenv("RAY_ADDRESS", address)
        exc, message = ConnectionError, f"no Ray cluster answers at {address}"
    else:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        exc, message = ValueError, (r"asks one node for 1 CPUs and 1 GPUs, but no node of a local Ray has that much "
                                    r"\(the largest have [1-9]\d* CPUs, 0 GPUs\)")
    with pytest.raises(exc, match=message):
        tune_focal(df, df, space, num_trials=2, resources_per_trial={"num_gpus": 1})
    assert ray_processes() == []


# ---------------------------------------------------------------- addresses: refused or failing fast, before any work

@pytest.mark.parametrize("address, message", [
    ("ray://127.0.0.1:10001", "Ray Client.*ray job submit"),
    ("http://127.0.0.1:8265", "not a Ray cluster address"),
    ("headnode", "not an address Ray can join"),
    ("127.0.0.1:port", "not an address Ray can join"),
    ("127.0.0.1:70000", "not an address Ray can join"),
])
@pytest.mark.parametrize("via", ["ray_address", "RAY_ADDRESS"])
def test_malformed_addresses_name_where_they_came_from(df, space, monkeypatch, address, message, via):
    kwargs = {"ray_address": address} if via == "ray_address" else {}
    if via == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    with pytest.raises(ValueError, match=f"{via}='{address}'.*{message}"):
        tune_focal(df, df, space, num_trials=2, **kwargs)


@pytest.mark.parametrize("via", ["ray_address", "RAY_ADDRESS"])
def test_an_address_that_does_not_answer_fails_fast(df, space, monkeypatch, via):
    address = f"127.0.0.1:{closed_port()}"
    kwargs = {"ray_address": address} if via == "ray_address" else {}
    if via == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=f"no Ray cluster answers at {address} \\(from {via}="):
        tune_focal(df, df, space, num_trials=2, **kwargs)
    assert time.monotonic() - start < 30 and CONNECT_TIMEOUT < 30
    assert ray_processes() == []


# ---------------------------------------------------------------- Ray started and stopped, even on an error

def test_ray_session_leaves_no_ray_process_even_on_error():
    with pytest.raises(RuntimeError, match="inside"):
        with ray_session(num_cpus=1):
            assert ray.is_initialized()
            assert set(RAY_PROCESSES) <= set(ray_processes())  # a local Ray: its daemons are our children
            assert ray.cluster_resources().get("CPU") == 1
            raise RuntimeError("inside the session")
    assert not ray.is_initialized()
    assert ray_processes() == []


def test_a_failed_clean_up_on_other_nodes_warns_at_the_line_that_called_tune_focal(monkeypatch):
    "The clean-up moved from tune_focal to ray_cluster: its warning still names the caller's line (stacklevel 3)."
    def lost(relative):
        raise RuntimeError("node lost")

    def tune_focal_like():  # calls the clean-up directly, as tune_focal does
        ray_cluster._remove_other_nodes_staging({})

    assert "\n        _remove_other_nodes_staging(staging)" in inspect.getsource(tune_focal)
    monkeypatch.setattr(ray_cluster, "_remove_remote_staging", lost)
    with pytest.warns(UserWarning, match=r"could not delete the trial files .*\(node lost\)") as record:
        line = inspect.currentframe().f_lineno + 1
        tune_focal_like()
    assert (record[0].filename, record[0].lineno) == (__file__, line)


# ---------------------------------------------------------------- a real search: 2 trials, 1 epoch, offline

@pytest.fixture(scope="module")
def search_data():
    "The offline profile's data split for a search, its 2x2 space at 1 epoch."
    from sklearn.model_selection import train_test_split

    from focal_tutorial.automm import profile_hyperparameters
    from focal_tutorial.backbone import offline_backbone
    from focal_tutorial.data import offline_dataset

    train_df, _ = offline_dataset()
    base = {**profile_hyperparameters("offline", gpu=False), "optim.max_epochs": 1,
            "model.timm_image.checkpoint_name": offline_backbone(epochs=1)}
    fit_df, val_df = train_test_split(train_df, test_size=0.3, stratify=train_df["label"], random_state=0)
    space = focal_search_space(fit_df, gammas=[0, 2], alpha_methods=["none", "inverse"], hyperparameters=base)
    return fit_df, val_df, space


def check_two_trial_result(result, fit_df, out: str) -> None:
    "What a 2-trial search of `search_data` must give: two different settings, one pick, one line per trial."
    t = result.trials
    assert len(t) == 2 and t["trial"].tolist() == [1, 2]
    assert {"gamma", "alpha_method", "alpha", "score", "epochs", "status", "chosen"} <= set(t.columns)
    assert len(set(zip(t["gamma"], t["alpha_method"]))) == 2  # no setting tried twice
    assert set(t["gamma"]) <= {0.0, 2.0} and set(t["alpha_method"]) <= {"none", "inverse"}
    strings = alpha_choices(fit_df["label"], ["none", "inverse"])
    assert all(strings[m] == a for m, a in zip(t["alpha_method"], t["alpha"]))
    assert (t["status"] == "done").all() and (t["epochs"] == 1).all()
    assert t["score"].between(0, 1).all()
    assert t["chosen"].sum() == 1
    pick = t[t["chosen"]].iloc[0]
    assert pick["score"] == t["score"].max() and result.best["gamma"] == pick["gamma"]
    assert result.metric == "val_f1_macro" and result.path is None
    assert result.hyperparameters[GAMMA_KEY] == pick["gamma"]
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert [line.split(":")[0] for line in lines] == ["trial 1/2", "trial 2/2"]
    assert not ray.is_initialized()


def test_two_trial_search_offline(capsys, search_data, ray_tmpdir):
    fit_df, val_df, space = search_data
    result = tune_focal(fit_df, val_df, space, num_trials=2, seed=0)
    check_two_trial_result(result, fit_df, capsys.readouterr().out)
    assert ray_processes() == []
    assert trial_files(ray_tmpdir) == []  # Ray Tune staged 2 trials' files (~114 MB) in its session folder


# ---------------------------------------------------------------- a real cluster: a Ray head started here

def gcs(address: str, service: str, method: str):
    "One call to a Ray head's GCS (its gRPC API), as `ray status` makes them."
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    with grpc.insecure_channel(address) as channel:
        stub = getattr(gcs_service_pb2_grpc, f"{service}Stub")(channel)
        return getattr(stub, method)(getattr(gcs_service_pb2, f"{method}Request")(), timeout=10)


def group_processes(pgid: int) -> list:
    "The processes of the process group `pgid` (the one this module started)."
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.Error, ProcessLookupError):
            pass
    return out


def stop_group(proc) -> list:
    "SIGTERM to the process group this module started (`ray start --block` stops its daemons), SIGKILL to what stays; the PIDs left."
    with pytest.MonkeyPatch.context():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while group_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in group_processes(proc.pid):
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    time.sleep(1)
    return [p.pid for p in group_processes(proc.pid)]


@pytest.fixture
def ray_head(ray_tmpdir):
    "A single-node Ray head of this test (`ray start --head --block`, 127.0.0.1, own temp dir and ports, 2 CPUs)."
    temp = Path(ray_tmpdir, "head")
    port = closed_port()
    ports = {f"--{k}": closed_port() for k in ("ray-client-server-port", "dashboard-agent-listen-port",
                                               "dashboard-agent-grpc-port", "metrics-export-port",
                                               "runtime-env-agent-port", "node-manager-port", "object-manager-port")}
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           f"--port={port}", f"--temp-dir={temp}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
           "--disable-usage-stats", *(f"{k}={v}" for k, v in ports.items())]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = open(Path(ray_tmpdir, "head.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"ray start failed: {Path(ray_tmpdir, 'head.log').read_text()[-2000:]}"
            try:
                if gcs(address, "NodeInfoGcsService", "GetAllNodeInfo").node_info_list:
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1)
        yield SimpleNamespace(address=address, temp=temp, proc=proc)
    finally:
        left = stop_group(proc)
        log.close()
        assert left == [], f"processes of the test's Ray head still running: {left}"


def test_search_on_a_ray_head(ray_head, search_data, monkeypatch, capsys):
    "issue 19: the smoke search through RAY_ADDRESS runs on this head, which keeps running; no trial files left there."
    fit_df, val_df, space = search_data
    monkeypatch.setenv("RAY_ADDRESS", ray_head.address)
    with pytest.raises(ValueError, match=r"3 CPUs.*no node of the Ray cluster at .* largest have 2 CPUs"):
        tune_focal(fit_df, val_df, space, num_trials=2, resources_per_trial={"num_cpus": 3})  # would wait forever
    result = tune_focal(fit_df, val_df, space, num_trials=2, seed=0, resources_per_trial={"num_cpus": 2})
    check_two_trial_result(result, fit_df, capsys.readouterr().out)
    jobs = gcs(ray_head.address, "JobInfoGcsService", "GetAllJobInfo").job_info_list
    assert [j.is_dead for j in jobs if j.driver_pid == os.getpid()] == [True, True]  # this head ran both, both ended
    assert ray_head.proc.poll() is None and gcs(ray_head.address, "NodeInfoGcsService", "GetAllNodeInfo")
    assert len(list(ray_head.temp.glob("session_2*/artifacts"))) == 1 and trial_files(ray_head.temp) == []
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port()}")
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="no Ray cluster answers"):
        tune_focal(fit_df, val_df, space, num_trials=2)
    assert time.monotonic() - start < 30


# ---------------------------------------------------------------- Ctrl-C

CTRL_C_SCRIPT = """
import os
from sklearn.model_selection import train_test_split
from focal_tutorial.automm import profile_hyperparameters
from focal_tutorial.backbone import offline_backbone
from focal_tutorial.data import offline_dataset
from focal_tutorial.search_space import focal_search_space
from focal_tutorial.tuning import tune_focal
train_df, _ = offline_dataset()
base = {**profile_hyperparameters("offline", gpu=False), "optim.max_epochs": 3,
        "model.timm_image.checkpoint_name": offline_backbone(epochs=1)}
fit_df, val_df = train_test_split(train_df, test_size=0.3, stratify=train_df["label"], random_state=0)
space = focal_search_space(fit_df, gammas=[0, 2], alpha_methods=["none"], hyperparameters=base)
tune_focal(fit_df, val_df, space, num_trials=2, scheduler="FIFO")
print("search ended without an interrupt")
"""


def test_ctrl_c_stops_the_search_and_leaves_no_ray(ray_tmpdir):
    "Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) while a trial trains."
    folder = Path(ray_tmpdir, "ctrl_c")
    folder.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(folder)}
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        started = []
        while not started and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            started = [p for p in group_processes(proc.pid) if "ImplicitFunc" in " ".join(p.cmdline())]
        assert started, "no trial started"
        time.sleep(3)
        pids = {p.pid for p in group_processes(proc.pid)}  # the driver, Ray's daemons and workers
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        left = stop_group(proc)
    assert left == [], f"processes left after Ctrl-C: {left}"
    assert proc.returncode != 0 and "search ended" not in out
    assert "KeyboardInterrupt" in err
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert trial_files(folder) == []
