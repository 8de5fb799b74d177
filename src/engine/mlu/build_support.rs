//! build.rs support for the `mlu` feature. OWNER: mlu helper.
pub fn build() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
