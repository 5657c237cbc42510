"""Everything outside the arrays: environments, episode storage, checkpoints, logs.

tasks       which environment a task name means (Control Suite, Gymnasium, registered)
envs        the environments, from pixels or states, with action repeat, in batches
replay      the episode store on disk, and sampling chunks from it
checkpoint  orbax checkpoints of the training state, with fingerprints
logger      metrics.jsonl, TensorBoard, curves, videos
tracking    the optional Weights & Biases mirror
rundir      the run directory's checks and config.json
"""
