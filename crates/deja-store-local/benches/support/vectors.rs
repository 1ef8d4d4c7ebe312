//! Random unit vectors for the index's benchmark and its recall example (`#[path]`-included
//! by both).

use rand::rngs::StdRng;
use rand::Rng;

/// One standard normal draw (Box–Muller; u1 in (0, 1] keeps ln finite).
pub fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f32 = 1.0 - rng.gen::<f32>();
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// `v` scaled to unit length.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// A direction drawn uniformly from the unit sphere of `dim` dimensions.
pub fn random(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    unit((0..dim).map(|_| gaussian(rng)).collect())
}

/// `base` with Gaussian noise of `sigma` per component, back on the unit sphere.
pub fn noisy(rng: &mut StdRng, base: &[f32], sigma: f32) -> Vec<f32> {
    unit(base.iter().map(|x| x + sigma * gaussian(rng)).collect())
}
