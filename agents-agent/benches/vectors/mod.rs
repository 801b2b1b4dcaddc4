//! What the vector benchmarks share: a seeded generator of clustered unit
//! vectors (random, but with neighbours worth finding) and percentiles.

/// A seeded xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-9), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

/// Scale `v` to unit length.
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` random unit centroids of `dims` dimensions.
pub fn centroids(r: &mut Rng, n: usize, dims: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..dims).map(|_| r.gauss()).collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// A unit vector near a random centroid: noise of norm about `spread`
/// around it.
pub fn point(r: &mut Rng, centroids: &[Vec<f32>], spread: f32) -> Vec<f32> {
    let c = &centroids[(r.next() % centroids.len() as u64) as usize];
    let scale = spread / (c.len() as f32).sqrt();
    let mut v: Vec<f32> = c.iter().map(|x| x + scale * r.gauss()).collect();
    normalize(&mut v);
    v
}

/// The `p` quantile of `v` (sorted in place).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}
