//! Media pipeline costs:
//! `cargo bench -p seidra-media -- --warm-up-time 1 --measurement-time 3`.
//!
//! - `thumbnail/png_2048`: decode a 2048×2048 RGB PNG and make both thumbnails (256 px and
//!   768 px JPEGs) — the whole per-image work of the thumbnail sweep, minus storage I/O.
//! - `export/zip_1000`: archive 1,000 objects of 128 KiB from a `LocalStore` (page cache
//!   warm) into a spooled ZIP with metadata and manifest, then store it with `put_file` —
//!   the export job minus the database. Throughput is media bytes per second.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seidra_media::archive::{Entry, write_zip};
use seidra_media::thumbnail;
use seidra_storage::{LocalStore, SharedStore};
use tokio_util::sync::CancellationToken;

/// A photo-like 2048² image: smooth gradients plus pixel noise (so PNG cannot cheat).
fn png_2048() -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    let img = image::RgbImage::from_fn(2048, 2048, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x1f) as u8;
        image::Rgb([((x / 8) as u8).wrapping_add(n), ((y / 8) as u8).wrapping_add(n), (((x + y) / 16) as u8) ^ n])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img).write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap_or(());
    out
}

fn bench_thumbnail(c: &mut Criterion) {
    let png = png_2048();
    let mut group = c.benchmark_group("thumbnail");
    group.bench_function("png_2048", |b| b.iter(|| thumbnail::make(black_box(&png)).map(|t| t.len()).unwrap_or(0)));
    // Where the time goes: decoding the PNG, then scaling and encoding both sizes.
    group.bench_function("stage_decode_png_2048", |b| {
        b.iter(|| image::load_from_memory(black_box(&png)).map(|i| i.width()).unwrap_or(0))
    });
    let decoded = image::load_from_memory(&png).unwrap_or_default();
    group.bench_function("stage_scale_and_encode_2048", |b| {
        b.iter(|| thumbnail::from_image(black_box(decoded.clone())).map(|t| t.len()).unwrap_or(0))
    });
    group.finish();
}

const ITEMS: usize = 1000;
const ITEM_BYTES: usize = 128 * 1024;

fn bench_export(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() else { return };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(local) = LocalStore::new(dir.path()) else { return };
    let store: SharedStore = Arc::new(local);
    let entries: Vec<Entry> = rt.block_on(async {
        let mut entries = Vec::with_capacity(ITEMS);
        for i in 0..ITEMS {
            let key = format!("uploads/bench/{i:04}.png");
            let bytes: Vec<u8> = (0..ITEM_BYTES).map(|j| (j.wrapping_mul(31) ^ i) as u8).collect();
            let _ = store.put(&key, bytes, "image/png").await;
            entries.push(Entry {
                storage_key: key,
                file_name: format!("{i:04}.png"),
                metadata: serde_json::json!({ "id": i, "prompt": "a red fox in the snow", "seed": i }),
            });
        }
        entries
    });
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((ITEMS * ITEM_BYTES) as u64));
    group.bench_function("zip_1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let spool = tempfile::NamedTempFile::new().ok()?;
                let file = spool.as_file().try_clone().ok()?;
                let cancel = CancellationToken::new();
                let (summary, _) =
                    write_zip(&store, entries.clone(), serde_json::json!({}), file, |_, _| {}, &cancel).await.ok()?;
                let stored = store.put_file("exports/bench/out.zip", spool.path(), "application/zip").await.ok()?;
                Some((summary.zip_bytes, stored.bytes_len))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_thumbnail, bench_export);
criterion_main!(benches);
