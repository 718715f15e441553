"""VICReg against a NumPy reference, invariances, collapse, jit/grad."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bagssl_jax import methods
from bagssl_jax.methods import barlow_twins, base, byol, simclr, spectral, tcr
from bagssl_jax.methods import vicreg

# Compared against float64/NumPy references: full-precision matmuls on any
# backend (TF32 on GPU and bf16 passes on TPU by default).
pytestmark = pytest.mark.usefixtures("exact_matmuls")


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
    loss, metrics = vicreg.vicreg_loss(z1, z2)
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
  _, m = vicreg.vicreg_loss(z1, z2)
  np.testing.assert_allclose(m["invariance"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(m["variance"], (1 - np.sqrt(1e-4)) / 4, rtol=1e-5)
  np.testing.assert_allclose(m["covariance"], 4.0, rtol=1e-5)


def test_vicreg_invariant_to_batch_permutation():
  z1, z2 = _z(2)
  perm = jax.random.permutation(jax.random.PRNGKey(3), z1.shape[0])
  np.testing.assert_allclose(vicreg.vicreg_loss(z1, z2)[0],
                             vicreg.vicreg_loss(z1[perm], z2[perm])[0],
                             rtol=1e-5)


def test_vicreg_collapse_costs_the_full_variance_penalty():
  z = jnp.ones((16, 8))
  loss, m = vicreg.vicreg_loss(z, z)
  np.testing.assert_allclose(m["variance"], 1 - np.sqrt(1e-4), rtol=1e-5)
  np.testing.assert_allclose(m["invariance"], 0.0, atol=1e-7)
  np.testing.assert_allclose(loss, 25 * (1 - np.sqrt(1e-4)), rtol=1e-5)


def test_multi_view_is_mean_over_pairs_and_jit_grad_finite():
  z = jax.random.normal(jax.random.PRNGKey(0), (16, 3, 8))
  loss, _ = methods.get("vicreg").loss(z)
  pairs = [(0, 1), (0, 2), (1, 2)]
  expected = np.mean([vicreg.vicreg_loss(z[:, i], z[:, j])[0]
                      for i, j in pairs])
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  fn = jax.jit(jax.grad(lambda z: methods.get("vicreg").loss(z)[0]))
  grad = fn(z)
  chex.assert_tree_all_finite(grad)
  chex.assert_shape(grad, z.shape)


# ---------------------------------------------------- Proposition 3.1 -------


def _joint_and_z(seed, k=6, d=4):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  joint = jax.random.uniform(k1, (k, k)) + 0.05
  return joint / joint.sum(), 0.5 * jax.random.normal(k2, (k, d))


def test_proposition_3_1_value_and_gradient():
  for seed, w in ((0, 1.0), (1, 0.3), (2, 2.5)):
    joint, z = _joint_and_z(seed)
    p, q = joint.sum(1), joint.sum(0)
    const = jnp.sum(joint**2 / (p[:, None] * q[None]))
    l_c = spectral.cooccurrence_loss(z, joint, w)
    l_s = spectral.spectral_contrastive_population_loss(z, joint, lam=w / 2)
    np.testing.assert_allclose(l_c, 2 * w * l_s + const, rtol=1e-5)
    g_c = jax.grad(spectral.cooccurrence_loss)(z, joint, w)
    g_s = jax.grad(spectral.spectral_contrastive_population_loss)(z, joint,
                                                                w / 2)
    np.testing.assert_allclose(g_c, 2 * w * g_s, rtol=1e-4, atol=1e-6)


def test_minibatch_spectral_loss_converges_to_population():
  joint, z = _joint_and_z(3)
  k = joint.shape[0]
  pairs = jax.random.choice(jax.random.PRNGKey(4), k * k, (4000, 32),
                            p=joint.ravel())
  i, j = pairs // k, pairs % k
  batch_losses = jax.vmap(lambda a, b: spectral.spectral_contrastive_loss(
      z[a], z[b], lam=0.7)[0])(i, j)
  population = spectral.spectral_contrastive_population_loss(z, joint, 0.7)
  np.testing.assert_allclose(batch_losses.mean(), population, rtol=0.02)


# ------------------------------------------------ the other method losses ---


def test_simclr_matches_reference_and_is_scale_invariant():
  z1, z2 = _z(5, n=6, d=3)
  loss, _ = simclr.simclr_loss(z1, z2, temperature=0.5)
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  sim = z @ z.T / 0.5
  ref = 0.
  for a in range(12):
    pos = (a + 6) % 12
    others = [b for b in range(12) if b != a]
    ref -= sim[a, pos] - np.log(np.exp(sim[a, others]).sum())
  np.testing.assert_allclose(loss, ref / 12, rtol=1e-5)
  np.testing.assert_allclose(simclr.simclr_loss(3 * z1, 0.2 * z2, 0.5)[0],
                             loss, rtol=1e-5)
  perm = np.array([3, 1, 0, 5, 4, 2])
  np.testing.assert_allclose(simclr.simclr_loss(z1[perm], z2[perm], 0.5)[0],
                             loss, rtol=1e-5)


def test_spectral_minibatch_hand_computed():
  z1 = jnp.array([[1., 0.], [0., 1.]])
  z2 = jnp.array([[1., 1.], [0., 2.]])
  # diag z1.z2: 1, 2 -> attract -1.5; off: z1_0.z2_1 = 0, z1_1.z2_0 = 1 -> 1/2.
  loss, m = spectral.spectral_contrastive_loss(z1, z2, lam=2.0)
  np.testing.assert_allclose(m["attract"], -1.5)
  np.testing.assert_allclose(m["repel"], 0.5)
  np.testing.assert_allclose(loss, -0.5)


def test_barlow_twins_reference_and_collapse():
  z1, z2 = _z(6, n=64, d=8)
  loss, _ = barlow_twins.barlow_twins_loss(z1, z2, lambd=5e-3)
  a = np.asarray(z1, np.float64)
  b = np.asarray(z2, np.float64)
  a = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
  b = (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5)
  c = a.T @ b / 64
  ref = ((1 - np.diag(c))**2).sum() + 5e-3 * ((c**2).sum() -
                                              (np.diag(c)**2).sum())
  np.testing.assert_allclose(loss, ref, rtol=1e-4)
  # Constant z: c = 0, so the diagonal costs 1 per dimension.
  np.testing.assert_allclose(
      barlow_twins.barlow_twins_loss(jnp.ones((16, 8)), jnp.ones((16, 8)))[0], 8.0,
      rtol=1e-5)


@pytest.mark.parametrize("shape", [(20, 5), (6, 24)])  # n > d and n < d
def test_total_coding_rate_and_tcr(shape):
  z = jax.random.normal(jax.random.PRNGKey(7), shape)
  n, d = z.shape
  ref = 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * 0.2) *
                                np.asarray(z, np.float64).T @ np.asarray(z))[1]
  np.testing.assert_allclose(tcr.total_coding_rate(z, 0.2), ref, rtol=1e-5)
  # Collapse: all views and images identical -> rate of a rank-1 matrix,
  # invariance exactly 1.
  collapsed = jnp.ones((16, 4, 8))
  loss, m = tcr.tcr_loss(collapsed, eps_sq=0.2, inv_coeff=200.)
  np.testing.assert_allclose(m["invariance"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(m["coding_rate"], 0.5 * np.log1p(8 / 0.2),
                             rtol=1e-5)
  np.testing.assert_allclose(loss, -m["coding_rate"] - 200., rtol=1e-6)


def test_byol_loss():
  p = jnp.array([[1., 0.], [0., 2.]])
  z = jnp.array([[2., 0.], [1., 0.]])
  np.testing.assert_allclose(byol.byol_loss(p, z)[0], (0. + 2.) / 2)


def test_every_method_jits_with_finite_grads_and_shards():
  import jax.sharding as jsh  # pylint: disable=g-import-not-at-top
  from bagssl_jax import sharding  # pylint: disable=g-import-not-at-top
  z = jax.random.normal(jax.random.PRNGKey(8), (16, 3, 8))
  mesh = sharding.make_mesh({"data": -1}, jax.devices()[:4])
  z_sharded = jax.device_put(z, jsh.NamedSharding(mesh, jsh.PartitionSpec(
      "data")))
  for method in methods.names("resnet"):
    loss = methods.get(method).loss
    for form in base.MULTI_VIEW:
      if methods.get(method).target:  # predictions vs the target's outputs
        fn = jax.jit(lambda z, l=loss, f=form: l(z, z[:, ::-1] ** 2, f)[0])
      else:
        fn = jax.jit(lambda z, l=loss, f=form: l(z, f)[0])
      single = fn(z)
      assert np.isfinite(single), method
      np.testing.assert_allclose(fn(z_sharded), single, rtol=1e-5, atol=1e-6,
                                 err_msg=f"{method} {form}")
      chex.assert_tree_all_finite(jax.grad(fn)(z))


def test_multi_view_forms():
  z = jax.random.normal(jax.random.PRNGKey(9), (32, 3, 8))
  pair = vicreg.vicreg_loss
  expected_pairs = np.mean([pair(z[:, i], z[:, j])[0]
                            for i, j in ((0, 1), (0, 2), (1, 2))])
  np.testing.assert_allclose(methods.get("vicreg").loss(z, "pairs")[0],
                             expected_pairs, rtol=1e-5)
  mean = z.mean(axis=1)
  expected_mean = np.mean([pair(z[:, v], mean)[0] for v in range(3)])
  np.testing.assert_allclose(methods.get("vicreg").loss(z, "mean")[0],
                             expected_mean, rtol=1e-5)
  # Two views: the pairs form is the plain two-view loss.
  np.testing.assert_allclose(methods.get("simclr").loss(z[:, :2])[0],
                             simclr.simclr_loss(z[:, 0], z[:, 1])[0],
                             rtol=1e-6)


def test_byol_views_symmetrised_and_target_gets_no_gradient():
  p = jax.random.normal(jax.random.PRNGKey(10), (16, 2, 8))
  t = jax.random.normal(jax.random.PRNGKey(11), (16, 2, 8))
  loss, _ = byol.byol_views(p, t)
  # BYOL's symmetrised loss: the sum of both directions (byol_experiment.py).
  expected = (byol.byol_loss(p[:, 0], t[:, 1])[0] +
              byol.byol_loss(p[:, 1], t[:, 0])[0])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  # Three views: twice the mean over the 6 ordered pairs; "mean": twice the
  # mean over views of each prediction against the mean target.
  p3 = jax.random.normal(jax.random.PRNGKey(12), (16, 3, 8))
  t3 = jax.random.normal(jax.random.PRNGKey(13), (16, 3, 8))
  directed = [byol.byol_loss(p3[:, i], t3[:, j])[0]
              for i in range(3) for j in range(3) if i != j]
  np.testing.assert_allclose(byol.byol_views(p3, t3)[0],
                             2 * np.mean(directed), rtol=1e-6)
  to_mean = [byol.byol_loss(p3[:, v], t3.mean(1))[0] for v in range(3)]
  np.testing.assert_allclose(byol.byol_views(p3, t3, "mean")[0],
                             2 * np.mean(to_mean), rtol=1e-6)
  # scale N(N-1): solo-learn's sum over the ordered pairs.
  np.testing.assert_allclose(byol.byol_views(p3, t3, scale=6.0)[0],
                             np.sum(directed), rtol=1e-6)
  assert methods.get("byol").keywords == {"scale"}
  grad_t = jax.grad(lambda t: byol.byol_views(p, t)[0])(t)
  np.testing.assert_array_equal(grad_t, np.zeros_like(t))
  assert np.abs(jax.grad(lambda p: byol.byol_views(p, t)[0])(p)).sum() > 0
