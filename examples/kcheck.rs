// Compare every level's vec_dot with scalar on real rows of a model.
use nib::gguf::Gguf;
use nib_simd::{Kernels, Level};
fn main() {
    let g = Gguf::open(std::env::args().nth(1).unwrap()).unwrap();
    let sc = Kernels::for_level(Level::Scalar);
    for level in Level::ALL
        .into_iter()
        .filter(|l| l.is_supported() && *l != Level::Scalar)
    {
        let k = Kernels::for_level(level);
        let mut seen = std::collections::HashSet::new();
        for t in g.tensors() {
            if t.dims.len() != 2 || !seen.insert((t.ty, t.dims[0])) {
                continue;
            }
            let cols = t.dims[0] as usize;
            let tr = sc.get(t.ty).unwrap();
            let at = tr.vec_dot_type;
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut a = vec![0u8; at.row_size(cols).unwrap()];
            (sc.get(at).unwrap().from_float.unwrap())(&x, &mut a);
            let data = g.tensor_data(t);
            let rb = t.ty.row_size(cols).unwrap();
            let mut worst = 0f32;
            for r in 0..8 {
                let row = &data[r * rb..(r + 1) * rb];
                let want = (tr.dot(nib_simd::Order::Vec).unwrap())(cols, row, &a);
                let got = (k.get(t.ty).unwrap().dot(nib_simd::Order::Vec).unwrap())(cols, row, &a);
                worst = worst.max((want - got).abs() / want.abs().max(1e-3));
            }
            println!(
                "{level} {} {} cols={cols} worst rel {worst:e}",
                t.name, t.ty
            );
        }
    }
}
