//! Host-side postprocessing, as in the lab: softmax over the logits, top-k, class labels.

use std::path::Path;

/// ImageNet-1k class names shipped in `models/imagenet_labels.txt` (line index = class id).
pub const IMAGENET_LABELS: &str = include_str!("../../models/imagenet_labels.txt");

/// Errors while reading a labels file.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// The file could not be read.
    #[error("cannot read labels file {path}: {source}")]
    Io {
        /// File concerned.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file has no labels.
    #[error("labels file {path} has no labels")]
    Empty {
        /// File concerned.
        path: String,
    },
}

/// Class names by class id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// Labels from text: one name per line, line index = class id. A trailing empty line is ignored;
    /// surrounding whitespace and a trailing `\r` are trimmed.
    pub fn parse(text: &str) -> Self {
        let mut names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
        while names.last().is_some_and(|l| l.is_empty()) {
            names.pop();
        }
        Self { names }
    }

    /// Labels from names in class-id order (a checkpoint's `id2label` or `label_names`).
    pub fn from_names(names: Vec<String>) -> Self {
        Self { names }
    }

    /// The embedded ImageNet-1k names.
    pub fn imagenet() -> Self {
        Self::parse(IMAGENET_LABELS)
    }

    /// Read a labels file (`--labels FILE`).
    pub fn from_file(path: &Path) -> Result<Self, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let labels = Self::parse(&text);
        if labels.is_empty() {
            return Err(LabelsError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(labels)
    }

    /// Generic names `class_0` .. `class_{n-1}` for models whose classes have no names.
    pub fn generic(n: usize) -> Self {
        Self {
            names: (0..n).map(|i| format!("class_{i}")).collect(),
        }
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no names.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Name of `class_id`, or `class_{id}` when the list is shorter.
    pub fn name(&self, class_id: usize) -> std::borrow::Cow<'_, str> {
        match self.names.get(class_id) {
            Some(n) => std::borrow::Cow::Borrowed(n.as_str()),
            None => std::borrow::Cow::Owned(format!("class_{class_id}")),
        }
    }
}

/// One ranked class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Class index.
    pub class_id: usize,
    /// `softmax(logits)[class_id]`.
    pub probability: f32,
    /// `logits[class_id]`.
    pub logit: f32,
}

/// Numerically stable softmax (max subtracted, sum accumulated in f64).
/// Non-finite logits give non-finite probabilities rather than a panic.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` most probable classes, highest probability first (ties: lower class id first).
/// `k` is clamped to `1..=logits.len()`.
pub fn top_k(logits: &[f32], k: usize) -> Vec<Ranked> {
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = k.clamp(1, logits.len().max(1)).min(logits.len());
    let by_prob = |a: &usize, b: &usize| {
        probs[*b]
            .partial_cmp(&probs[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.cmp(b))
    };
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, by_prob);
        order.truncate(k);
    }
    order.sort_by(by_prob);
    order
        .into_iter()
        .map(|class_id| Ranked {
            class_id,
            probability: probs[class_id],
            logit: logits[class_id],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: full sort of (prob, id) pairs.
    fn reference_top_k(logits: &[f32], k: usize) -> Vec<usize> {
        let m = logits
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, |a, b| a.max(b as f64));
        let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|&a, &b| e[b].partial_cmp(&e[a]).unwrap().then(a.cmp(&b)));
        idx.truncate(k);
        idx
    }

    #[test]
    fn softmax_sums_to_one_and_matches_definition() {
        let logits = [1.0f32, 2.0, 3.0, -50.0, 80.0];
        let p = softmax(&logits);
        let s: f32 = p.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        let denom: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            assert!((p[i] as f64 - (l as f64).exp() / denom).abs() < 1e-7);
        }
    }

    #[test]
    fn top_k_matches_full_sort_on_pseudo_random_logits() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for n in [1usize, 2, 7, 1000] {
            let logits: Vec<f32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 20.0
                })
                .collect();
            for k in [1usize, 3, 5, n] {
                let k = k.min(n);
                let got: Vec<usize> = top_k(&logits, k).iter().map(|r| r.class_id).collect();
                assert_eq!(got, reference_top_k(&logits, k), "n={n} k={k}");
            }
        }
    }

    #[test]
    fn top_k_breaks_ties_by_class_id() {
        let got: Vec<usize> = top_k(&[0.5, 1.0, 1.0, 1.0], 2)
            .iter()
            .map(|r| r.class_id)
            .collect();
        assert_eq!(got, vec![1, 2]);
    }

    #[test]
    fn labels_parse_and_fallback() {
        let l = Labels::parse("cat\r\ndog\n\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l.name(1), "dog");
        assert_eq!(l.name(5), "class_5");
        let imagenet = Labels::imagenet();
        assert_eq!(imagenet.len(), 1000);
        assert_eq!(imagenet.name(0), "tench");
    }
}
