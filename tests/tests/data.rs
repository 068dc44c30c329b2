//! Data loading: TensorDataset, DataLoader (batching, seeded shuffles, drop_last, device
//! placement on a background thread) and the CSV reader.

use std::collections::HashSet;

use kiln::data::{DataLoader, Dataset, TensorDataset, read_csv};
use kiln::prelude::*;
use kiln::{DType, Error};
use kiln_tests::device_test;

fn dataset(n: usize, dev: &Device) -> TensorDataset {
    // Sample i has features [i, 10 i, 100 i] and label i % 7.
    let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 10.0 * i as f32, 100.0 * i as f32]).collect();
    let y: Vec<u32> = (0..n).map(|i| (i % 7) as u32).collect();
    TensorDataset::new(&Tensor::from_vec(x, &[n, 3], dev).unwrap(), &Tensor::from_labels(&y, dev).unwrap()).unwrap()
}

device_test!(loader_batches_shuffles_and_places, |dev| {
    let ds = dataset(103, dev);
    assert_eq!(ds.len(), 103);
    let loader = DataLoader::new(&ds, 10).device(dev);
    assert_eq!(loader.len(), 11);
    let batches: Vec<(Tensor, Tensor)> = loader.iter().collect();
    assert_eq!(batches.len(), 11);
    assert_eq!(batches[10].0.shape(), &[3, 3]);
    for (x, y) in &batches {
        assert_eq!(x.device(), *dev);
        assert_eq!(y.dtype(), DType::U32);
        let xv = x.to_vec()?;
        let yv = y.to_vec_u32()?;
        for (r, l) in yv.iter().enumerate() {
            let i = xv[r * 3] as usize;
            assert_eq!(xv[r * 3 + 2], 100.0 * i as f32);
            assert_eq!(*l, (i % 7) as u32);
        }
    }
    // In order without shuffle.
    assert_eq!(batches[0].1.to_vec_u32()?, (0..10).map(|i| i % 7).collect::<Vec<u32>>());
    // drop_last.
    let dl = DataLoader::new(&ds, 10).drop_last(true).device(dev);
    assert_eq!(dl.len(), 10);
    assert_eq!(dl.iter().count(), 10);
    // Seeded shuffles: a permutation each epoch, different across epochs, repeatable.
    let order = |l: &DataLoader<TensorDataset>| -> Vec<usize> {
        l.iter().flat_map(|(x, _)| x.to_vec().unwrap().chunks(3).map(|r| r[0] as usize).collect::<Vec<_>>()).collect()
    };
    let a = DataLoader::new(&ds, 16).shuffle(42).device(dev);
    let e0 = order(&a);
    let e1 = order(&a);
    assert_eq!(e0.iter().copied().collect::<HashSet<_>>().len(), 103);
    assert_ne!(e0, e1);
    assert_ne!(e0, (0..103).collect::<Vec<_>>());
    let b = DataLoader::new(&ds, 16).shuffle(42).device(dev);
    assert_eq!(order(&b), e0);
    b.set_epoch(1);
    assert_eq!(order(&b), e1, "set_epoch resumes the shuffle sequence");
    // try_iter gives Results.
    assert!(DataLoader::new(&ds, 50).device(dev).try_iter().all(|r| r.is_ok()));
});

#[test]
fn dataset_errors() {
    let dev = Device::cpu();
    let x = Tensor::zeros(&[4, 2], &dev).unwrap();
    let e = TensorDataset::new(&x, &Tensor::from_labels(&[1, 2, 3], &dev).unwrap()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert!(TensorDataset::from_rows(vec![0.0; 5], 2, vec![0, 1]).is_err());
    let ds = TensorDataset::from_rows(vec![0.0; 4], 2, vec![0, 1]).unwrap();
    assert!(ds.get_batch(&[0, 2]).is_err());
    assert_eq!(ds.subset(&[1]).unwrap().len(), 1);
}

#[test]
fn csv_reading() {
    let dir = std::env::temp_dir().join(format!("kiln-csv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("a.csv");
    std::fs::write(&p, "f1,f2,label\n1.5,2,0\n-3,4e2,2\n\n5,6,1\n").unwrap();
    let c = read_csv(&p, true).unwrap();
    assert_eq!((c.rows, c.cols), (3, 3));
    assert_eq!(c.header, ["f1", "f2", "label"]);
    assert_eq!(c.values, vec![1.5, 2.0, 0.0, -3.0, 400.0, 2.0, 5.0, 6.0, 1.0]);
    let ds = c.into_dataset(2).unwrap();
    assert_eq!(ds.len(), 3);
    let b = ds.get_batch(&[1]).unwrap();
    assert_eq!(b.x, vec![-3.0, 400.0]);
    // Errors name the file, the line and the column.
    std::fs::write(&p, "1,2\n3,x\n").unwrap();
    let e = read_csv(&p, false).unwrap_err().to_string();
    assert!(e.contains("a.csv") && e.contains("line 2") && e.contains("column 2"), "{e}");
    std::fs::write(&p, "1,2\n3\n").unwrap();
    assert!(read_csv(&p, false).unwrap_err().to_string().contains("line 2"));
    std::fs::write(&p, "1,2.5\n").unwrap();
    assert!(read_csv(&p, false).unwrap().into_dataset(1).is_err(), "2.5 is not a class");
    assert!(read_csv(dir.join("absent.csv"), false).unwrap_err().to_string().contains("absent.csv"));
    std::fs::remove_dir_all(&dir).ok();
    // The bundled digits, gzip-compressed.
    let digits =
        read_csv(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz"), false).unwrap();
    assert_eq!((digits.rows, digits.cols), (1797, 65));
}
