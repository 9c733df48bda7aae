"""Issue 15, case 5: `prepare` workers die with their parent (kill -9), and temporary files of a killed
run are cleaned up by the next run."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from macbdf.cli import main

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")   # a zombie has exited (its new parent may just not reap it)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(clip_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(12):
        shutil.copy(clip_dir / "long.mkv", root / f"v{i:02d}.mkv")
    out = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "macbdf", "prepare", "--dataset", "folder", "--root", str(root),
                             "--out", str(out), "--workers", "2", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers: list[int] = []
        for _ in range(600):   # wait (at most ~60 s) until both workers have started
            workers = []
            for p in _children(proc.pid):
                try:
                    if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes():
                        workers.append(p)
                except OSError:
                    continue
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(workers) >= 2, "the pool never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for _ in range(300):   # the kernel's parent-death signal is immediate; the poll thread takes ~1 s
            if not any(_alive(p) for p in workers):
                break
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "prepare workers outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _children(proc.pid):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    # The next run cleans up what the killed one left and finishes the job.
    assert main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), "--quiet"]) == 0
    assert not list(out.glob("shards/*/.*.tmp")) and not list(out.glob(".*.tmp"))
    assert len(list(out.glob("shards/*/*.safetensors"))) == 12


def test_stale_temp_files_are_removed_on_the_next_run(clip_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    shutil.copy(clip_dir / "short.mp4", root / "a.mp4")
    out = tmp_path / "cache"
    (out / "shards" / "007").mkdir(parents=True)
    stale = [out / "shards" / "007" / ".x-0123456789.safetensors.k2j3h4.tmp", out / ".manifest.jsonl.abcd.tmp"]
    for p in stale:
        p.write_bytes(b"")   # the 0-byte file a kill -9 leaves
    keep = out / "shards" / "007" / "notes.txt"
    keep.write_text("not ours")
    assert main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), "--quiet"]) == 0
    assert not any(p.exists() for p in stale) and keep.exists()
    # With --shard, other jobs may be writing into OUT: only temp files untouched for a while go.
    fresh, old = out / "shards" / "007" / ".y.tmp", out / "shards" / "007" / ".z.tmp"
    fresh.write_bytes(b"")
    old.write_bytes(b"")
    t = time.time() - 3600
    os.utime(old, (t, t))
    assert main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), "--quiet",
                 "--shard", "0/1"]) == 0
    assert fresh.exists() and not old.exists()


def test_die_with_parent_in_a_grandchild(tmp_path: Path) -> None:
    """The helper on its own: a grandchild that called die_with_parent ends when its parent is killed."""
    code = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import os, time; from macbdf.data.prepare_cache import die_with_parent; "
        "die_with_parent(os.getppid()); print(os.getpid(), flush=True); time.sleep(120)'], stdout=subprocess.PIPE)\n"
        "print(child.stdout.readline().decode().strip(), flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        gpid = int(parent.stdout.readline().decode().strip())
        assert _alive(gpid)
        parent.kill()
        parent.wait()
        for _ in range(300):
            if not _alive(gpid):
                break
            time.sleep(0.1)
        assert not _alive(gpid)
    finally:
        if parent.poll() is None:
            parent.kill()
