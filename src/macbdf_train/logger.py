"""Run logs: ``RUN_DIR/metrics.jsonl`` (one JSON record per line) and TensorBoard events."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from torch import Tensor

from macbdf.filemode import atomic_write_text

__all__ = ["MetricsLogger", "finite_or_none"]


def finite_or_none(x: Any) -> Any:
    """JSON-safe floats: NaN/inf (e.g. an undefined AUC) become None."""
    if isinstance(x, Tensor):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class MetricsLogger:
    """metrics.jsonl (append, flushed per record) + TensorBoard; only rank 0 writes."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            # Records written after the checkpoint we resume from will be produced again.
            keep = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by the kill
                if isinstance(rec, dict) and int(rec.get("step", 0)) <= resume_step:
                    keep.append(json.dumps(rec))
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=(resume_step + 1) if resume_step is not None else None)
            except Exception as e:  # tensorboard missing or broken: JSONL still works
                print(f"warning: TensorBoard logging disabled ({type(e).__name__}: {e})", file=sys.stderr)

    def log(self, rec: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: finite_or_none(v) for k, v in rec.items()}
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()
        if self.tb is not None:
            step = int(rec.get("step", 0))
            for k, v in clean.items():
                if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if not self.enabled:
            return
        self._f.close()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
