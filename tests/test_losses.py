"""VICReg against a NumPy reference, invariances, collapse, jit/grad."""
import chex
import jax
import jax.numpy as jnp
import numpy as np

from bagssl_jax import losses


def _vicreg_numpy(z1, z2, sim=25., std=25., cov=1., eps=1e-4):
  """Straight transcription of the official PyTorch VICReg loss."""
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  n, d = z1.shape
  repr_loss = ((z1 - z2)**2).mean()
  x, y = z1 - z1.mean(0), z2 - z2.mean(0)
  std_x = np.sqrt(x.var(0, ddof=1) + eps)
  std_y = np.sqrt(y.var(0, ddof=1) + eps)
  std_loss = np.maximum(0, 1 - std_x).mean() / 2 + np.maximum(
      0, 1 - std_y).mean() / 2
  cov_x, cov_y = x.T @ x / (n - 1), y.T @ y / (n - 1)
  off = lambda m: (m**2).sum() - (np.diag(m)**2).sum()
  cov_loss = off(cov_x) / d + off(cov_y) / d
  return sim * repr_loss + std * std_loss + cov * cov_loss


def _z(seed, n=32, d=16, scale=0.5):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  return (scale * jax.random.normal(k1, (n, d)),
          scale * jax.random.normal(k2, (n, d)))


def test_vicreg_matches_reference():
  for seed, scale in ((0, 0.5), (1, 2.0)):  # std hinge active / inactive
    z1, z2 = _z(seed, scale=scale)
    loss, metrics = losses.vicreg_loss(z1, z2)
    np.testing.assert_allclose(loss, _vicreg_numpy(z1, z2), rtol=1e-5)
    np.testing.assert_allclose(
        loss, 25 * metrics["invariance"] + 25 * metrics["variance"] +
        metrics["covariance"], rtol=1e-6)


def test_vicreg_hand_computed_tiny_case():
  z1 = jnp.array([[1., 0.], [-1., 0.]])
  z2 = jnp.array([[1., 0.], [-1., 2.]])
  # invariance: mean of squared diffs = 4/4 = 1. z1: var = [2, 0];
  # z2: var = [2, 2]; std hinge: z1 -> (0 + (1 - 0.01)) / 2 / 2, z2 -> 0.
  # cov z2: [[2, -2], [-2, 2]] -> off-diag squares 8 / d=2 -> 4.
  _, m = losses.vicreg_loss(z1, z2)
  np.testing.assert_allclose(m["invariance"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(m["variance"], (1 - np.sqrt(1e-4)) / 4, rtol=1e-5)
  np.testing.assert_allclose(m["covariance"], 4.0, rtol=1e-5)


def test_vicreg_invariant_to_batch_permutation():
  z1, z2 = _z(2)
  perm = jax.random.permutation(jax.random.PRNGKey(3), z1.shape[0])
  np.testing.assert_allclose(losses.vicreg_loss(z1, z2)[0],
                             losses.vicreg_loss(z1[perm], z2[perm])[0],
                             rtol=1e-5)


def test_vicreg_collapse_costs_the_full_variance_penalty():
  z = jnp.ones((16, 8))
  loss, m = losses.vicreg_loss(z, z)
  np.testing.assert_allclose(m["variance"], 1 - np.sqrt(1e-4), rtol=1e-5)
  np.testing.assert_allclose(m["invariance"], 0.0, atol=1e-7)
  np.testing.assert_allclose(loss, 25 * (1 - np.sqrt(1e-4)), rtol=1e-5)


def test_multi_view_is_mean_over_pairs_and_jit_grad_finite():
  z = jax.random.normal(jax.random.PRNGKey(0), (16, 3, 8))
  loss, _ = losses.method_loss("vicreg", z)
  pairs = [(0, 1), (0, 2), (1, 2)]
  expected = np.mean([losses.vicreg_loss(z[:, i], z[:, j])[0]
                      for i, j in pairs])
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  fn = jax.jit(jax.grad(lambda z: losses.method_loss("vicreg", z)[0]))
  grad = fn(z)
  chex.assert_tree_all_finite(grad)
  chex.assert_shape(grad, z.shape)
