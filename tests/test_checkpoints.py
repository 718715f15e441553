"""Save -> load gives identical params; the notebook API embeds patches."""
import jax
import numpy as np
import pytest

from bagssl_jax import checkpoints, config as config_lib, models, optim, steps
from tests.conftest import load_config


def _state(config):
  model = models.make_model(config)
  tx, _ = optim.make_optimizer(config.optimizer, config.batch_size, 10, 10)
  return jax.jit(steps.make_init(model, tx, config))(jax.random.PRNGKey(3))


def test_save_load_identical_params(tmp_path):
  config = load_config("fashion_mnist_vicreg", "runlocal")
  workdir = str(tmp_path)
  (tmp_path / "config.json").write_text(config_lib.to_json(config))
  state = _state(config)
  mgr = checkpoints.manager(workdir)
  checkpoints.save(mgr, 7, state, wait=True)
  mgr.close()
  loaded = checkpoints.load(workdir)
  assert loaded.step == 7
  assert loaded.config.model.width == config.model.width
  for a, b in zip(jax.tree.leaves(state.params),
                  jax.tree.leaves(loaded.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  patches = np.random.default_rng(0).integers(0, 256, (5, 14, 14, 1), np.uint8)
  h, z = loaded.embed_patches(patches)
  assert h.shape == (5, 8 * config.model.width) and z.shape == (5, 64)
  assert np.isfinite(np.asarray(h)).all()


def test_load_errors_are_one_line(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match="config.json"):
    checkpoints.load(str(tmp_path))
  config = load_config("fashion_mnist_vicreg", "runlocal")
  (tmp_path / "config.json").write_text(config_lib.to_json(config))
  with pytest.raises(checkpoints.CheckpointError, match="no checkpoint"):
    checkpoints.load(str(tmp_path))
