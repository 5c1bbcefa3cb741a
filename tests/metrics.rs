//! Segmentation and key-point scores against hand-computed values.

use adjoint::metrics::{Confusion, Detection, KeypointScores, argmax_classes, decode_heatmap, heatmap_targets};
use ndarray::{Array4, Axis};

#[test]
fn confusion_scores_by_hand() {
    let mut m = Confusion::new(3).unwrap();
    // truth 0 0 1 1 2, predicted 0 1 1 1 0
    m.add(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0]).unwrap();
    assert_eq!(m.pixel_accuracy(), 3.0 / 5.0);
    // class 0: TP 1, FN 1 (→1), FP 1 (2→); class 1: TP 2, FP 1; class 2: TP 0, FN 1.
    assert_eq!(m.iou(), vec![Some(1.0 / 3.0), Some(2.0 / 3.0), Some(0.0)]);
    assert!((m.mean_iou() - 1.0 / 3.0).abs() < 1e-15);
    // A class that never occurs nor is predicted has no IoU and is left out of the mean.
    let mut m = Confusion::new(4).unwrap();
    m.add(&[0, 1], &[0, 1]).unwrap();
    assert_eq!(m.iou(), vec![Some(1.0), Some(1.0), None, None]);
    assert_eq!(m.mean_iou(), 1.0);
    assert!(m.add(&[0, 4], &[0, 1]).is_err());
    assert!(m.add(&[0], &[0, 1]).is_err());
    assert!(Confusion::new(0).is_err() && Confusion::new(257).is_err());
}

#[test]
fn argmax_takes_the_first_maximum_and_nan_wins() {
    // One image, 3 classes, 1 × 4 pixels.
    let logits = Array4::from_shape_vec(
        (1, 3, 1, 4),
        vec![
            1.0,
            2.0,
            0.0,
            f32::NAN, // class 0
            1.0,
            3.0,
            0.0,
            5.0, // class 1
            0.5,
            3.0,
            f32::NAN,
            9.0, // class 2
        ],
    )
    .unwrap();
    let classes = argmax_classes(logits.view()).unwrap();
    assert_eq!(classes.as_slice().unwrap(), &[0, 1, 2, 0]);
}

#[test]
fn heatmap_targets_are_gaussians_at_pixel_centres() {
    let heat = heatmap_targets(&[(1, 4.5, 2.5), (0, 3.0, 3.0)], 2, 8, 1.5).unwrap();
    assert_eq!(heat.shape(), &[2, 8, 8]);
    assert_eq!(heat[[1, 2, 4]], 1.0); // the point is that pixel's centre
    // Pixel (x 6, y 2) has its centre 2 px to the right: exp(−4 / (2·2.25)).
    assert!((heat[[1, 2, 6]] - (-4.0f32 / 4.5).exp()).abs() < 1e-7);
    // The point on a pixel corner: its 4 pixels at distance √0.5 each.
    let corner = (-0.5f32 / 4.5).exp();
    for (y, x) in [(2, 2), (2, 3), (3, 2), (3, 3)] {
        assert!((heat[[0, y, x]] - corner).abs() < 1e-7);
    }
    assert_eq!(heat[[0, 7, 7]], 0.0); // beyond 3σ
    assert!(heatmap_targets(&[(2, 1.0, 1.0)], 2, 8, 1.5).is_err());
    assert!(heatmap_targets(&[], 2, 8, 0.0).is_err());
    assert!(heatmap_targets(&[], 2, 8, f32::NAN).is_err());
    assert!(heatmap_targets(&[], usize::MAX, 1 << 40, 1.0).is_err());
}

/// Peaks rendered at sub-pixel positions come back within 0.01 px (the log-parabola fit is
/// exact for a Gaussian, up to f32 rounding), strongest first;
/// a plateau is one peak; values at or below the threshold are not peaks.
#[test]
fn decoding_finds_rendered_peaks() {
    let points = [(0, 10.3, 12.8), (0, 20.5, 5.5), (1, 7.9, 7.1)];
    let mut heat = heatmap_targets(&points, 2, 32, 2.0).unwrap();
    heat[[1, 30, 30]] = 0.2; // a weak bump below the threshold
    let found = decode_heatmap(heat.view(), 0.3);
    assert_eq!(found.len(), 3, "{found:?}");
    for &(k, x, y) in &points {
        let d = found.iter().find(|d| d.kind == k && (d.x - x).hypot(d.y - y) < 0.01);
        assert!(d.is_some(), "({k}, {x}, {y}) not found in {found:?}");
    }
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
    let mut flat = ndarray::Array3::<f32>::zeros((1, 5, 5));
    flat.index_axis_mut(Axis(0), 0)
        .slice_mut(ndarray::s![1..3, 1..3])
        .fill(0.9);
    assert_eq!(decode_heatmap(flat.view(), 0.5).len(), 1);
}

#[test]
fn keypoint_scores_by_hand() {
    let det = |kind, x, y, score| Detection { kind, x, y, score };
    let truth = [(0, 5.0, 5.0), (0, 10.0, 10.0), (1, 20.0, 20.0)];
    // Strongest first: (5.5, 5) matches the first point (0.5 px); (5, 6.5) would match it too
    // but it is taken and the second is too far: a false positive; the kind-1 detection 1 px
    // off matches; the point at (10, 10) is missed; a kind-0 detection near the kind-1 point
    // does not count for it.
    let detections = [
        det(0, 5.5, 5.0, 0.9),
        det(0, 5.0, 6.5, 0.8),
        det(1, 20.0, 21.0, 0.7),
        det(0, 20.0, 20.0, 0.6),
    ];
    let mut s = KeypointScores::default();
    s.add(&detections, &truth, 2.0);
    assert_eq!((s.true_positives, s.false_positives, s.false_negatives), (2, 2, 1));
    assert_eq!(s.precision(), 0.5);
    assert_eq!(s.recall(), 2.0 / 3.0);
    assert_eq!(s.f1(), 4.0 / 7.0);
    assert_eq!(s.mean_error(), 0.75);
}
