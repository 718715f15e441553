"""The baselines' on-device augmentations, one test per operation."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bagssl_jax.config import defaults, presets, validation
from bagssl_jax.data import augment, photometric


def _images(n=6, size=16, channels=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(
      size=(n, size, size, channels)), jnp.float32)


def test_blur_preserves_the_mean_and_constants_and_smooths():
  x = _images()
  sigma = jnp.full((x.shape[0],), 1.5)
  y = photometric.gaussian_blur(x, sigma, 5)
  np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)),
                             atol=0.02)
  assert float(y.std()) < 0.7 * float(x.std())  # smoother
  const = jnp.full((2, 8, 8, 1), 0.3)
  np.testing.assert_allclose(
      photometric.gaussian_blur(const, jnp.array([0.1, 2.0]), 3), const,
      atol=1e-6)


def test_solarize_inverts_above_the_threshold_only():
  x = _images()
  y = photometric.solarize(x)
  below = x < 0.5
  np.testing.assert_array_equal(np.where(below, y, 0), np.where(below, x, 0))
  np.testing.assert_allclose(np.where(below, 0, 1 - y),
                             np.where(below, 0, x), atol=1e-7)


def test_jitter_order_is_a_permutation_that_varies_with_the_key():
  a = np.asarray(photometric.jitter_order(jax.random.PRNGKey(0), 64))
  b = np.asarray(photometric.jitter_order(jax.random.PRNGKey(1), 64))
  assert (np.sort(a, axis=1) == np.arange(4)).all()
  assert len({tuple(r) for r in a}) > 4  # per image, not one order
  assert (a != b).any()


def test_apply_in_order_follows_each_images_order():
  x = jnp.ones((2, 2, 2, 1))
  ops = (lambda v: v + 1., lambda v: v * 3., lambda v: v, lambda v: v)
  order = jnp.array([[0, 1, 2, 3], [1, 0, 2, 3]])
  y = photometric.apply_in_order(x, ops, order)
  assert float(y[0, 0, 0, 0]) == 6. and float(y[1, 0, 0, 0]) == 4.


def test_per_view_probabilities():
  p = photometric.view_probs((1.0, 0.1), 6, 2)
  np.testing.assert_allclose(p, [1.0, 0.1] * 3, rtol=1e-6)
  hits = photometric.bernoulli_per_image(jax.random.PRNGKey(0), (1.0, 0.0),
                                         1000, 2)[:, 0, 0, 0]
  assert bool(hits[::2].all()) and not bool(hits[1::2].any())


def test_color_augment_random_order_blur_solarize_per_view():
  cfg = ml_collections.ConfigDict(dict(
      defaults.base_config().augment.to_dict(),
      **dict(presets.AUGMENT["imagenet"]["default"])))
  x = _images(8)
  y = augment.color_augment(jax.random.PRNGKey(0), x, cfg, num_views=2)
  assert y.shape == x.shape and bool(jnp.isfinite(y).all())
  assert float(y.min()) >= 0. and float(y.max()) <= 1.
  # Off by default: the fixed order without blur/solarize is the old output.
  base = defaults.base_config().augment
  plain = augment.color_augment(jax.random.PRNGKey(0), x, base)
  cfg_off = ml_collections.ConfigDict(base.to_dict())
  cfg_off.random_order = True
  assert not np.allclose(
      augment.color_augment(jax.random.PRNGKey(0), x, cfg_off), plain)


def test_bad_probability_is_a_config_error():
  config = presets.build("cifar10", "vicreg", "runlocal")
  config.augment.solarize_prob = (0.0, 1.5)
  try:
    validation.validate(config)
  except validation.ConfigError as e:
    assert "augment.solarize_prob" in str(e)
  else:
    raise AssertionError("no error")


def test_rrc_boxes_are_drawn_on_the_original_image():
  from bagssl_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  h, w = 40, 80  # wide: a centre crop would drop the left and right quarters
  yy, xx = np.mgrid[0:h, 0:w]
  image = np.stack([xx * 3, yy * 6, (xx + yy) * 2], -1).astype(np.uint8)
  source = [{"image": image, "label": 1}] * 4
  spec = pipeline.CropSpec(seed=0, crop="rrc", num_patches=8)
  rows = np.stack([np.arange(4), np.arange(4)], 1)
  el = pipeline.ReadAndCrop(source, 3, 32, spec).map(rows)
  assert el["image"].shape == (4, 32, 32, 3) and el["boxes"].shape == (4, 8, 4)
  left = el["boxes"][..., 1] * w / 32  # back in original pixels
  assert left.min() < w / 4  # boxes reach where the centre crop is not
  # The squashed image at the scaled box shows the original's box content.
  box = el["boxes"][0, 0]
  got = np.asarray(augment.crop_and_resize(
      jnp.asarray(el["image"][None, :1], jnp.float32)[0] / 255.,
      jnp.asarray(box[None, None]), 8))[0, 0]
  t, l = box[0] * h / 32, box[1] * w / 32
  bh, bw = box[2] * h / 32, box[3] * w / 32
  ys = (t + (np.arange(8) + .5) * bh / 8).astype(int)
  xs = (l + (np.arange(8) + .5) * bw / 8).astype(int)
  want = image[ys][:, xs] / 255.
  assert np.abs(got - want).mean() < 0.05
