"""Optional mirror of a run's metrics and videos to Weights & Biases (`--wandb`).

`metrics.jsonl` and TensorBoard stay the record; this sends the same scalars, under the
same tags (`test/seed0/return`, `update/seed0/kl`, ...), to one W&B run per run directory,
plotted against the `episode` field. The W&B run id is kept in `wandb.json` in the run
directory, so a resumed run, and `evaluate --wandb`, log into the same W&B run. W&B's own
settings apply: `WANDB_MODE=offline` writes the run under `LOGDIR/wandb/` for `wandb sync`
later, with no network. Episodes that a crashed run logged past its last checkpoint are
logged again after the resume (W&B has no way to drop them); metrics.jsonl holds them once.
"""

from __future__ import annotations

import json
import os
import secrets

from planet_jax.io.logger import scalar_tags, write_json

MISSING_PACKAGE = "--wandb needs the wandb package: pip install 'planet-jax[wandb]'."


class TrackingError(RuntimeError):
    """The tracker could not be started; the message is one sentence."""


class Wandb:
    """One W&B run for a run directory: `log(record)` mirrors a metrics record, `video`
    uploads an mp4, `close` finishes the run (flushing what offline mode writes)."""

    def __init__(self, logdir: str, config: dict, *, project: str, entity: str = "", job: str = "train"):
        try:
            import wandb
        except ImportError:
            raise TrackingError(MISSING_PACKAGE) from None
        self._wandb = wandb
        path = os.path.join(logdir, "wandb.json")
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
        else:
            saved = {"id": secrets.token_hex(4), "project": project, "entity": entity}
            write_json(path, saved)
        try:
            self.run = wandb.init(
                project=saved["project"],
                entity=saved["entity"] or None,
                id=saved["id"],
                resume="allow",
                dir=logdir,
                name=os.path.basename(os.path.abspath(logdir)),
                config=config,
                job_type=job,
            )
        except Exception as exc:  # wandb raises its own types (no login, no network, ...)
            raise TrackingError(f"could not start the W&B run: {exc}".rstrip(".") + ".") from None
        self.run.define_metric("episode")
        self.run.define_metric("*", step_metric="episode")
        self.id = saved["id"]

    def log(self, record: dict) -> None:
        values = scalar_tags(record)
        if values and "episode" in record:
            self.run.log({"episode": record["episode"], **values})

    def video(self, key: str, path: str, episode: int, fps: int = 20) -> None:
        self.run.log({"episode": episode, key: self._wandb.Video(path, fps=fps, format="mp4")})

    def close(self) -> None:
        self.run.finish()
