"""deploy/: systemd units verified by systemd-analyze, scripts by shellcheck, install.sh in a temp root;
and tickloop.live.sdnotify against a real notify socket."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ConfigError
from tickloop.live.sdnotify import SdNotifier

pytestmark = pytest.mark.edge

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.timer"))
SESSION_UNITS = [DEPLOY / "systemd" / f"tickloop-{m}.service" for m in ("record", "paper", "live")]
SCRIPTS = [DEPLOY / "install.sh", DEPLOY / "ship-all.sh", REPO / "scripts" / "edge-check.sh"]
# Keys newer than some systemd a developer may run verify with (RestartSteps/RestartMaxDelaySec: 254).
NEWER_KEYS = {"RestartSteps": 254, "RestartMaxDelaySec": 254}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (apt-get install {'systemd' if tool.startswith('systemd') else tool})")
    return path


def _systemd_version() -> int:
    out = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"systemd (\d+)", out)
    assert match is not None, out
    return int(match.group(1))


def _units(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values]}} (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


# --------------------------------------------------------------------------- units


def test_systemd_analyze_verify_accepts_every_unit(tmp_path: Path) -> None:
    _need("systemd-analyze")
    version = _systemd_version()
    fake_bin = tmp_path / "opt-tickloop"
    (fake_bin / "bin").mkdir(parents=True)
    (fake_bin / "venv" / "bin").mkdir(parents=True)
    for exe in (fake_bin / "bin" / "tickloop-ship-all", fake_bin / "venv" / "bin" / "tickloop"):
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:  # verify needs the executables to exist: point /opt/tickloop at a temp copy
        (units / unit.name).write_text(unit.read_text().replace("/opt/tickloop", str(fake_bin)))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in units.iterdir())],
        capture_output=True, text=True, check=False,
    )
    complaints = [
        line for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not any(
            f"Unknown key '{key}'" in line or f"Unknown key name '{key}'" in line
            for key, since in NEWER_KEYS.items() if version < since
        )
    ]
    assert complaints == [], "\n".join(complaints)
    assert proc.returncode == 0 or version < max(NEWER_KEYS.values())


@pytest.mark.parametrize("unit", SESSION_UNITS, ids=lambda p: p.stem)
def test_session_units_have_the_required_settings(unit: Path) -> None:
    svc = _units(unit.read_text())["Service"]
    one = {k: v[-1] for k, v in svc.items()}
    assert one["Type"] == "notify" and one["Restart"] == "on-failure"
    assert one["RestartSec"] and int(one["RestartSteps"]) > 1 and one["RestartMaxDelaySec"]
    assert one["WatchdogSec"] and one["LimitNOFILE"] == "65536"
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"
    assert one["ReadWritePaths"] == "/var/lib/tickloop" and one["PrivateTmp"] == "yes"
    assert one["ProtectHome"] == "yes" and one["User"] == "tickloop"
    assert one["EnvironmentFile"] == "/etc/tickloop/secrets.env"
    mode = unit.stem.removeprefix("tickloop-")
    assert f"/opt/tickloop/venv/bin/tickloop {mode} " in one["ExecStart"]
    assert "exec " in one["ExecStart"]  # the main PID is tickloop: it sends READY/WATCHDOG itself
    unit_section = _units(unit.read_text())["Unit"]
    assert int(unit_section["StartLimitBurst"][-1]) > 1 and unit_section["StartLimitIntervalSec"]


def test_sysctl_settings_are_each_justified_and_known_keys() -> None:
    lines = (DEPLOY / "sysctl" / "90-tickloop.conf").read_text().splitlines()
    settings = [(i, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    assert len(settings) >= 5
    for i, line in settings:
        key = line.split("=")[0].strip()
        assert re.fullmatch(r"net(\.[a-z0-9_]+)+", key), line
        j = i - 1
        while j >= 0 and lines[j].startswith("net."):  # a group of related settings shares one comment
            j -= 1
        assert j >= 0 and lines[j].startswith("#"), f"{key} has no comment saying why"
        if Path("/proc/sys/net/ipv4").is_dir():
            assert Path("/proc/sys", *key.split(".")).exists(), f"{key}: no such sysctl on this kernel"


def test_journald_dropin_caps_size() -> None:
    conf = _units((DEPLOY / "journald" / "90-tickloop.conf").read_text())["Journal"]
    assert conf["SystemMaxUse"] and conf["SystemKeepFree"] and conf["SystemMaxFileSize"]


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    shellcheck = _need("shellcheck")
    proc = subprocess.run([shellcheck, "-x", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scripts_are_strict_and_executable() -> None:
    for script in SCRIPTS:
        text = script.read_text()
        assert "set -euo pipefail" in text or "set -eu" in text, script
        assert os.access(script, os.X_OK), f"{script} is not executable"
    assert "trap cleanup EXIT" in (REPO / "scripts" / "edge-check.sh").read_text()


def _install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY / "install.sh"), "--root", str(root), "--no-system", *extra],
        capture_output=True, text=True, check=False,
    )


def test_install_dry_run_prints_actions_and_changes_nothing(tmp_path: Path) -> None:
    proc = _install(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert list(tmp_path.iterdir()) == []
    out = proc.stdout
    for unit in UNITS:
        assert f"etc/systemd/system/{unit.name}" in out
    assert "would create: " + str(tmp_path / "etc/tickloop/secrets.env") + " (mode 0600)" in out
    assert "sysctl.d/90-tickloop.conf" in out and "journald.conf.d/90-tickloop.conf" in out
    assert "useradd --system" in out and "--system-site-packages" in out


def test_install_into_a_temp_root_is_idempotent_and_keeps_secrets(tmp_path: Path) -> None:
    first = _install(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    secrets = tmp_path / "etc/tickloop/secrets.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "etc/tickloop/ship.env").stat().st_mode) == 0o600
    for unit in UNITS:
        assert (tmp_path / "etc/systemd/system" / unit.name).read_bytes() == unit.read_bytes()
    assert os.access(tmp_path / "opt/tickloop/bin/tickloop-ship-all", os.X_OK)
    secrets.write_text("TICKLOOP_API_KEY=k\nTICKLOOP_API_SECRET=s\n")
    secrets.chmod(0o644)  # an operator's mistake: the next run puts it back to 0600
    second = _install(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "run: install -D" not in second.stdout and "created:" not in second.stdout  # nothing rewritten
    assert secrets.read_text() == "TICKLOOP_API_KEY=k\nTICKLOOP_API_SECRET=s\n"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600


def test_ship_all_does_nothing_without_a_destination(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "TICKLOOP_ROOT": str(tmp_path), "TICKLOOP_SHIP_DEST": ""}
    proc = subprocess.run(["sh", str(DEPLOY / "ship-all.sh")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "TICKLOOP_SHIP_DEST" in proc.stderr


# --------------------------------------------------------------------------- sd_notify


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        yield sock, path
    finally:
        sock.close()


def test_sdnotify_sends_ready_status_watchdog_stopping(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    n = SdNotifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_interval_ns == 15_000_000_000
    assert n.ready("paper: 15 symbols")
    assert sock.recv(4096) == b"READY=1\nSTATUS=paper: 15 symbols"
    assert n.status("books\nsynced")
    assert sock.recv(4096) == b"STATUS=books synced"
    assert n.keepalive(1_000)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert not n.keepalive(1_000 + 14_999_999_999)  # rate-limited to half of WATCHDOG_USEC
    assert n.keepalive(1_000 + 15_000_000_000)
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.stopping("SIGTERM")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=SIGTERM"
    assert n.sent == 5 and n.errors == 0
    n.close()


def test_sdnotify_is_a_noop_without_a_socket() -> None:
    n = SdNotifier.from_env({})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.keepalive(0) and not n.stopping()
    assert n.sent == 0


def test_sdnotify_watchdog_for_another_pid_is_ignored(notify_socket: tuple[socket.socket, str]) -> None:
    _, path = notify_socket
    other = SdNotifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_ns is None or os.getpid() == 1
    with pytest.raises(ConfigError, match="WATCHDOG_USEC"):
        SdNotifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "soon"})


def test_sdnotify_abstract_socket_and_a_vanished_socket(tmp_path: Path) -> None:
    name = f"@tickloop-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(5)
    abstract = SdNotifier(name)
    try:
        assert abstract.watchdog()
        assert sock.recv(64) == b"WATCHDOG=1"
    finally:
        abstract.close()
        sock.close()
    gone = SdNotifier(str(tmp_path / "missing"))
    assert not gone.ready() and gone.errors == 1  # never raises into the trading loop
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        gone.notify("READY")
