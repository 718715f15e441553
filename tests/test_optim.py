"""Optimizers: warmup + cosine with lr x batch / 256; LARS leaves biases and
norms out of weight decay and trust-ratio adaptation (the VICReg recipe)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bagssl_jax import optim


def _opt(name="lars", **kw):
  return ml_collections.ConfigDict(dict(
      name=name, base_lr=0.2, weight_decay=1e-2, momentum=0.9,
      warmup_epochs=2, end_lr_factor=0.001) | kw)


def test_warmup_cosine_peak_scales_with_batch():
  lr = optim.schedule(_opt(), batch_size=2048, total_steps=100,
                      steps_per_epoch=10)
  peak = 0.2 * 2048 / 256
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose(float(lr(10)), peak / 2, rtol=1e-6)  # warmup
  np.testing.assert_allclose(float(lr(20)), peak, rtol=1e-6)
  np.testing.assert_allclose(float(lr(60)), peak * (1 + 0.001) / 2, rtol=1e-5)
  np.testing.assert_allclose(float(lr(100)), peak * 0.001, rtol=1e-5)
  assert all(float(lr(s)) >= float(lr(s + 1)) for s in range(20, 100))


def test_lars_excludes_biases_and_norms_from_decay_and_adaptation():
  tx, _ = optim.make_optimizer(_opt(warmup_epochs=0), 256, 1000, 10)
  params = {"kernel": jnp.full((4, 4), 2.0), "bias": jnp.ones((4,)),
            "bn_scale": jnp.ones((4,))}
  grads = {"kernel": jnp.full((4, 4), 0.5), "bias": jnp.full((4,), 0.5),
           "bn_scale": jnp.zeros((4,))}
  updates, _ = tx.update(grads, tx.init(params), params)
  lr, wd = 0.2, 1e-2
  # 1-D leaves: plain momentum SGD on the raw gradient, no decay, no ratio.
  np.testing.assert_allclose(updates["bias"], -lr * 0.5, rtol=1e-6)
  np.testing.assert_allclose(updates["bn_scale"], 0.0)
  # Kernels: decayed, then scaled by the trust ratio 0.001 ||w|| / ||u||.
  u = 0.5 + wd * 2.0
  ratio = 0.001 * np.linalg.norm(np.full((4, 4), 2.0)) / np.linalg.norm(
      np.full((4, 4), u))
  np.testing.assert_allclose(updates["kernel"], -lr * ratio * u, rtol=1e-5)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_steps_by_name(name):
  tx, _ = optim.make_optimizer(_opt(name, warmup_epochs=0), 256, 10, 10)
  params = {"kernel": jnp.ones((3, 3)), "bias": jnp.zeros((3,))}
  grads = {"kernel": jnp.ones((3, 3)), "bias": jnp.ones((3,))}
  updates, _ = tx.update(grads, tx.init(params), params)
  assert float(updates["kernel"].sum()) < 0 and float(updates["bias"].sum()) < 0


def test_unknown_optimizer_name():
  with pytest.raises(ValueError, match="unknown optimizer 'adam_typo'"):
    optim.make_optimizer(_opt("adam_typo"), 256, 10, 10)


def _with_predictor():
  """(params, grads): a backbone kernel and BYOL's predictor subtree."""
  params = {"backbone": {"kernel": jnp.full((3, 3), 2.0)},
            "predictor": {"kernel": jnp.full((3, 3), 2.0),
                          "bias": jnp.zeros((3,))}}
  return params, jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_predictor_lr_mult_scales_only_the_predictor(name):
  params, grads = _with_predictor()
  base, _ = optim.make_optimizer(_opt(name, warmup_epochs=0), 256, 10, 10)
  fast, _ = optim.make_optimizer(
      _opt(name, warmup_epochs=0, predictor_lr_mult=10.0), 256, 10, 10)
  u1, _ = base.update(grads, base.init(params), params)
  u10, _ = fast.update(grads, fast.init(params), params)
  np.testing.assert_allclose(u10["backbone"]["kernel"],
                             u1["backbone"]["kernel"], rtol=1e-6)
  for leaf in ("kernel", "bias"):
    np.testing.assert_allclose(u10["predictor"][leaf],
                               10.0 * u1["predictor"][leaf], rtol=1e-6)
  assert float(jnp.abs(u1["predictor"]["kernel"]).sum()) > 0


def _updates(tx, params, grads, steps):
  """The update of every step, params moving along (LARS reads them)."""
  state, out = tx.init(params), []
  for _ in range(steps):
    u, state = tx.update(grads, state, params)
    params = jax.tree.map(lambda p, d: p + d, params, u)
    out.append(u)
  return out


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_predictor_constant_lr_stops_only_the_predictors_decay(name):
  params, grads = _with_predictor()
  kw = dict(warmup_epochs=1, predictor_lr_mult=3.0)
  const, _ = optim.make_optimizer(_opt(name, predictor_constant_lr=True, **kw),
                                  256, 30, 10)
  decayed, _ = optim.make_optimizer(_opt(name, **kw), 256, 30, 10)
  # Reference for the predictor: the same warm-up, then a flat "cosine".
  flat, _ = optim.make_optimizer(_opt(name, end_lr_factor=1.0, **kw),
                                 256, 30, 10)
  got, want_rest, want_pred = (_updates(t, params, grads, 30)
                               for t in (const, decayed, flat))
  for step in (3, 15, 29):
    np.testing.assert_allclose(got[step]["backbone"]["kernel"],
                               want_rest[step]["backbone"]["kernel"], rtol=1e-5)
    for leaf in ("kernel", "bias"):
      np.testing.assert_allclose(got[step]["predictor"][leaf],
                                 want_pred[step]["predictor"][leaf], rtol=1e-5)
  # Late in the run the decayed predictor has slowed down; this one has not.
  assert (float(jnp.abs(got[29]["predictor"]["bias"]).sum()) >
          2 * float(jnp.abs(want_rest[29]["predictor"]["bias"]).sum()))
