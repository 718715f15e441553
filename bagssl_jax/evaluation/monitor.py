"""Online kNN monitor: kNN accuracy on a fixed subset of images during
training.

Every `eval.knn_every_steps` steps (and at the last step) the current
network embeds the first `eval.knn_monitor_train_images` train images (the
kNN bank) and the first `eval.knn_monitor_test_images` test images with
`eval.knn_monitor_protocol` (default: `16_patches`, or `16_crops` for the
:rrc baseline) and classifies the test images by weighted kNN (k =
`eval.knn_k`, cosine, `eval.knn_temperature`), as solo-learn's online kNN.
The accuracy goes to metrics.jsonl (`knn_monitor`), TensorBoard
(`monitor/knn`) and a panel of loss_curve.png. ResNet methods only.
"""
from __future__ import annotations

import time

from absl import logging

from bagssl_jax import models, sharding
from bagssl_jax.evaluation import embedding, probes
from bagssl_jax.evaluation import run as eval_run


def protocol(config):
  """The monitor's protocol: eval.knn_monitor_protocol or the default."""
  name = config.eval.get("knn_monitor_protocol", "")
  if name:
    return name
  return "16_crops" if config.get("crop", "patches") == "rrc" else "16_patches"


class KnnMonitor:
  """Call `maybe(step, state)` after each step; it measures when due."""

  def __init__(self, model, config, mesh, reporter, total_steps):
    ev = config.eval
    self.every, self.total_steps = ev.knn_every_steps, total_steps
    self.config, self.mesh, self.reporter = config, mesh, reporter
    self.name = protocol(config)
    self.data, self.train_src, self.test_src, shape = eval_run.prepare(config)
    self.n_train = ev.get("knn_monitor_train_images", 2000)
    self.n_test = ev.get("knn_monitor_test_images", 1000)
    self.embedder = embedding.PassEmbedder(model, config, shape, mesh,
                                           [self.name])

  def maybe(self, step, state):
    if step % self.every and step != self.total_steps:
      return None
    t = time.time()
    variables = sharding.replicate(
        {"params": state.params, "batch_stats": state.batch_stats}, self.mesh)
    train_f, train_y = self.embedder(variables, self.train_src, self.n_train,
                                     self.data)
    test_f, test_y = self.embedder(variables, self.test_src, self.n_test,
                                   self.data)
    ev = self.config.eval
    acc = probes.knn_classify(train_f[self.name], train_y, test_f[self.name],
                              test_y, self.train_src.num_classes, k=ev.knn_k,
                              temperature=ev.knn_temperature)
    logging.info("kNN monitor at step %d: %.4f (%s, %d bank / %d test images, "
                 "%.1fs)", step, acc, self.name, len(train_y), len(test_y),
                 time.time() - t)
    self.reporter.write_monitor(step, {"knn_monitor": acc}, self.name)
    return acc


def make(model, config, mesh, reporter, total_steps):
  """A KnnMonitor, or None when eval.knn_every_steps is 0 or the model is a
  ViT."""
  if not config.eval.get("knn_every_steps", 0) or models.is_vit(config):
    return None
  return KnnMonitor(model, config, mesh, reporter, total_steps)
