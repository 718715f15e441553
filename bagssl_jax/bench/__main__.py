"""Benchmarks: `python -m bagssl_jax.bench [--json] [--sections=...]`.

Sections (each runs in its own subprocess, so peak memory is its own):
  pipeline  the real grain train pipeline (read, shuffle, patch extraction,
            batching): Fashion-MNIST 28x28 -> 2 x 14x14 patches, and a
            CIFAR-shaped source (32x32x3 -> 2 x 14x14x3; the resize to 32 is
            done on the device), with 1 read thread (a per-core figure).
  train     the reference CPU workload: ResNet-18 CIFAR stem, widths
            16/32/64/128, 1x14x14 inputs, projector 512-512-512, VICReg
            25/25/1, SGD momentum 0.9, float32, 256 images x 2 patches.
            `train_patches_per_s` times forward + backward + update on ready
            patches; `train_full_step_patches_per_s` adds this repository's
            on-device augmentation (colour jitter, flip) as in training.
  torch     the same train workload in PyTorch eager (CPU, 2 threads) when
            torch is installed (it is not a dependency), for
            `train_vs_torch_ratio` = train_patches_per_s / torch's.
  eval      patch-aggregated embedding (`all_patches` and `16_patches` of
            the Fashion-MNIST test set) and its peak memory (max RSS).
  probe     optax linear probe vs scikit-learn's LogisticRegression on the
            same features (the mean-of-16-patch h of a randomly initialised
            ResNet-10, or of `--workdir`'s checkpoint), and the kNN's time.
  scaling   (not in the default list: several compiles) train patches/s of
            the same workload as patches per image, batch and width vary.
  vit       (not in the default list) images/s of the DINO and SelfPatch
            train steps of configs/fashion_mnist_{dino,selfpatch}.py (7x7
            ViT patches) and of SelfPatch with 4x4 patches (12-px local
            crops): the cost follows the number of tokens.
  imagenet_pipeline  (not in the default list) configs/imagenet_vicreg.py's
            host pipeline on one core, on the fly (JPEG folder) and prepared
            (each stored format); how one main process scales over worker
            processes (its CPU per image, the cores it absorbs, images/s
            with 0, 1, 2 workers, its ceiling); the train FLOPs per image
            and the host cores one H100 at 40% MFU needs (bench/pipeline.py).
  gpu       on a GPU or TPU only: configs/imagenet_vicreg.py's real train
            step in bf16 (uint8 patches -> augment -> model -> loss ->
            update) on all local devices: images/s, model FLOPs (lowered,
            unoptimised cost analysis), MFU against the device kind's exact
            peak (bench/gpu.py's table) and peak device memory.
  gpu_batches  (not in the default list) the same step at 256, 512 and 1024
            images per device: images/s, MFU, peak memory, compile time.

Steady state only: compilation is timed apart; each figure is the median of
`--repeats` timed repeats.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app, flags

from bagssl_jax.bench import pipeline, sections

SECTIONS = ("pipeline", "train", "torch", "eval", "probe", "gpu")
EXTRA_SECTIONS = ("scaling", "vit", "imagenet_pipeline", "gpu_batches")
flags.DEFINE_bool("json", False, "Print one JSON object as the last line.")
flags.DEFINE_list("sections", list(SECTIONS), "Which benchmarks to run.")
flags.DEFINE_string("section", None, "Internal: run one section in-process.")
flags.DEFINE_integer("repeats", 5, "Timed repeats per figure (median).")
flags.DEFINE_string("workdir", None, "Probe features from this run's "
                    "checkpoint instead of a randomly initialised network.")
FLAGS = flags.FLAGS


# --------------------------------------------------------------- driver ---
def _run_section(name):
  if name in ("eval", "probe"):
    fn = {"eval": sections.bench_eval, "probe": sections.bench_probe}[name]
    return fn(FLAGS.repeats, FLAGS.workdir)
  return {"pipeline": sections.bench_pipeline, "train": sections.bench_train,
          "gpu": sections.bench_gpu, "torch": sections.bench_torch,
          "gpu_batches": sections.bench_gpu_batches,
          "scaling": sections.bench_scaling,
          "vit": sections.bench_vit,
          "imagenet_pipeline": pipeline.bench_imagenet_pipeline,
          }[name](FLAGS.repeats)


def _child(name):
  cmd = [sys.executable, "-m", "bagssl_jax.bench", f"--section={name}",
         f"--repeats={FLAGS.repeats}"]
  if FLAGS.workdir:
    cmd.append(f"--workdir={FLAGS.workdir}")
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode != 0 or not lines:
    err = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return {f"{name}_error": err}
  return json.loads(lines[-1])


def _fmt(v):
  if isinstance(v, float):
    return f"{v:,.0f}" if v >= 100 else f"{v:.4g}"
  return str(v)


def main(argv):
  del argv
  if FLAGS.section:
    print(json.dumps(_run_section(FLAGS.section)), flush=True)
    return
  bad = [s for s in FLAGS.sections if s not in SECTIONS + EXTRA_SECTIONS]
  if bad:
    print(f"error: --sections: unknown {bad} (choose from {SECTIONS + EXTRA_SECTIONS})",
          file=sys.stderr)
    sys.exit(2)
  results = {"cpu_count": os.cpu_count()}
  for name in FLAGS.sections:
    r = _child(name)
    results.update(r)
    for k, v in r.items():
      print(f"{k:<42}{_fmt(v):>16}", flush=True)
  if "torch_train_patches_per_s" in results and "train_patches_per_s" in results:
    results["train_vs_torch_ratio"] = (results["train_patches_per_s"] /
                                       results["torch_train_patches_per_s"])
    print(f"{'train_vs_torch_ratio':<42}"
          f"{results['train_vs_torch_ratio']:>16.3f}", flush=True)
  if FLAGS.json:
    print(json.dumps(results))


if __name__ == "__main__":
  app.run(main)
