//! The choices an eval transform makes besides its sizes and constants: how the image is brought to
//! the crop ([`CropMode`]), which resampling filter ([`Interpolation`]) and where an odd margin puts
//! the crop ([`CropRounding`]), named as timm and Pillow name them.

use std::fmt;
use std::str::FromStr;

/// How the decoded image is brought to the `crop_size` square: timm's `crop_mode`, plus the
/// crop without a resize of a Hugging Face processor with `do_resize: false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CropMode {
    /// The shorter side to `resize_size`, the longer one `int(resize_size · long / short)`
    /// (torchvision `Resize(int)`), then a center crop: the official transform, timm `center`,
    /// Hugging Face `size: {shortest_edge}`.
    #[default]
    Center,
    /// Both sides to `resize_size`, the aspect ratio not kept (torchvision `Resize((s, s))`), then a
    /// center crop: timm `squash`, Hugging Face `size: {height, width}` (no crop when they equal
    /// the crop).
    Squash,
    /// The longer side to `resize_size`, the aspect ratio kept (timm `ResizeKeepRatio(longest=1)`:
    /// each side `round(side / ratio)`), then a center crop that pads with the mean colour
    /// `round(255 · mean)` (timm `CenterCropOrPad`): timm `border`.
    Border,
    /// No resize: the center crop (zero-padded where the image is smaller) of the decoded image:
    /// Hugging Face `do_resize: false` with `do_center_crop: true`.
    CropOnly,
}

impl CropMode {
    /// Every mode, in the order the docs list them.
    pub const ALL: [CropMode; 4] = [Self::Center, Self::Squash, Self::Border, Self::CropOnly];

    /// The name flags and GetModelInfo use: timm's `center`, `squash`, `border`, and `crop_only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::Squash => "squash",
            Self::Border => "border",
            Self::CropOnly => "crop_only",
        }
    }
}

impl fmt::Display for CropMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CropMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown crop mode {s:?}: expected {}", names(&Self::ALL)))
    }
}

/// A resampling filter of Pillow's `Image.resize` (`Resample.c`; NEAREST through
/// `ImagingScaleAffine`), reproduced exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// `Image.NEAREST` (0): the source pixel under each output pixel's centre.
    Nearest,
    /// `Image.BOX` (4): support 0.5.
    Box,
    /// `Image.BILINEAR` (2): triangle filter, support 1.
    Bilinear,
    /// `Image.HAMMING` (5): Hamming-windowed sinc, support 1.
    Hamming,
    /// `Image.BICUBIC` (3): Keys cubic with a = -0.5, support 2 (the official transform's).
    #[default]
    Bicubic,
    /// `Image.LANCZOS` (1): Lanczos-windowed sinc, support 3.
    Lanczos,
}

impl Interpolation {
    /// Every filter, in the order the docs list them.
    pub const ALL: [Interpolation; 6] = [
        Self::Nearest,
        Self::Box,
        Self::Bilinear,
        Self::Hamming,
        Self::Bicubic,
        Self::Lanczos,
    ];

    /// timm's name (`str_to_interp_mode`), also the flag's and GetModelInfo's.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::Box => "box",
            Self::Bilinear => "bilinear",
            Self::Hamming => "hamming",
            Self::Bicubic => "bicubic",
            Self::Lanczos => "lanczos",
        }
    }

    /// The filter of a Pillow resampling code (`PIL.Image.Resampling`, as Hugging Face's
    /// `resample` stores it): 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming.
    pub fn from_pil_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => return None,
        })
    }
}

impl fmt::Display for Interpolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interpolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown interpolation {s:?}: expected {}",
                    names(&Self::ALL)
                )
            })
    }
}

/// Where a center crop starts along a side whose margin to the crop is odd, and where the image
/// lands in the crop when it is smaller (zero padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CropRounding {
    /// torchvision's `CenterCrop` (and timm's `CenterCropOrPad`): the crop starts at
    /// `int(round((size - crop) / 2))` (half to even); a smaller image gets `(crop - size) // 2`
    /// padding before it.
    #[default]
    Torchvision,
    /// Hugging Face's image processors (`image_transforms.center_crop`, the PIL backend): the
    /// crop starts at `(size - crop) // 2`; a smaller image gets `ceil((crop - size) / 2)` padding
    /// before it. Both are `floor((size - crop) / 2)`.
    Floor,
}

impl CropRounding {
    /// The name GetModelInfo uses: `torchvision` or `floor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Floor => "floor",
        }
    }
}

/// `a, b or c` for an error message.
fn names<T: fmt::Display>(all: &[T]) -> String {
    let quoted: Vec<String> = all.iter().map(|m| format!("{m}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for m in CropMode::ALL {
            assert_eq!(m.as_str().parse::<CropMode>(), Ok(m));
        }
        for i in Interpolation::ALL {
            assert_eq!(i.as_str().parse::<Interpolation>(), Ok(i));
        }
        let err = "cubic".parse::<Interpolation>().unwrap_err();
        assert!(
            err.contains("bilinear") && err.contains("or lanczos"),
            "{err}"
        );
        assert!("Center".parse::<CropMode>().is_err());
    }

    #[test]
    fn pil_codes_are_pillows() {
        // PIL.Image.Resampling: NEAREST 0, LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5.
        let expected = [
            Interpolation::Nearest,
            Interpolation::Lanczos,
            Interpolation::Bilinear,
            Interpolation::Bicubic,
            Interpolation::Box,
            Interpolation::Hamming,
        ];
        for (code, want) in expected.into_iter().enumerate() {
            assert_eq!(Interpolation::from_pil_code(code as u64), Some(want));
        }
        assert_eq!(Interpolation::from_pil_code(6), None);
    }
}
