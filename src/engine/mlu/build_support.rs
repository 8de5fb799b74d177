//! build.rs support for the `mlu` feature (included by build.rs through `#[path]`).
//!
//! * Always (feature `mlu`): bindgen turns `src/engine/mlu/mm_shim.h` (plain C) into
//!   `$OUT_DIR/mm_shim_bindings.rs`. This needs libclang (`apt-get install libclang-dev`) but no
//!   Cambricon SDK, so `cargo check --features mlu` works on any machine.
//! * With `NEUWARE_HOME` set (e.g. `/usr/local/neuware`): compiles `mm_shim.cc` with `cc` against
//!   `$NEUWARE_HOME/include`, links `magicmind_runtime` and `cnrt` from `$NEUWARE_HOME/lib64`
//!   (with an rpath), and sets `cfg(neuware)`, which switches `create_engines` to the real runtime.
//!   Without it the backend compiles, but `create_engines` reports that the binary was built
//!   without the Neuware SDK.
//! * `SWIN_MLU_CXX11_ABI=0|1` (optional): compiles `mm_shim.cc` with
//!   `-D_GLIBCXX_USE_CXX11_ABI=0|1`. The shim passes `std::string`/`std::vector` across MagicMind's
//!   C++ API, so it must use the libstdc++ ABI the MagicMind package was built with (Cambricon ships
//!   packages for both); unset, the compiler's default is used (1 on current GCC). The plugin
//!   library has the same switch: `cmake -DSWIN_GLIBCXX_USE_CXX11_ABI=0|1` (plugins/CMakeLists.txt).
//!   Which ABI a package uses: `nm -DC $NEUWARE_HOME/lib64/libmagicmind_runtime.so | grep -c
//!   'std::__cxx11::'` is non-zero for ABI 1 (src/engine/mlu/README.md).

use std::env;
use std::path::{Path, PathBuf};

const SHIM_DIR: &str = "src/engine/mlu";

/// Generate the shim bindings and, with `NEUWARE_HOME`, build and link the shim.
pub fn build() -> Result<(), Box<dyn std::error::Error>> {
    let header = format!("{SHIM_DIR}/mm_shim.h");
    let source = format!("{SHIM_DIR}/mm_shim.cc");
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=NEUWARE_HOME");
    println!("cargo:rerun-if-env-changed=SWIN_MLU_CXX11_ABI");
    let abi = cxx11_abi(env::var("SWIN_MLU_CXX11_ABI").ok().as_deref())?;
    println!("cargo::rustc-check-cfg=cfg(neuware)");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    bindgen::Builder::default()
        .header(&header)
        .allowlist_function("mm_shim_.*")
        .allowlist_type("MmShim.*|SwinPluginSelfTestFn")
        .allowlist_var("MM_SHIM_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .map_err(|e| format!("bindgen failed on {header} (is libclang installed? apt-get install libclang-dev): {e}"))?
        .write_to_file(out_dir.join("mm_shim_bindings.rs"))?;

    let Some(home) = env::var_os("NEUWARE_HOME").filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let home = PathBuf::from(home);
    let include = home.join("include");
    for required in ["mm_runtime.h", "cnrt.h"] {
        if !include.join(required).is_file() {
            return Err(format!(
                "NEUWARE_HOME={} has no include/{required}: point NEUWARE_HOME at a Neuware SDK with MagicMind, \
                 or unset it to build the mlu backend without the SDK",
                home.display()
            )
            .into());
        }
    }
    let mut shim = cc::Build::new();
    shim.cpp(true)
        .file(&source)
        .include(SHIM_DIR)
        .include(&include)
        .flag("-std=c++14")
        .warnings(true);
    if let Some(abi) = abi {
        shim.define("_GLIBCXX_USE_CXX11_ABI", abi);
    }
    shim.compile("swin_mm_shim");
    for lib_dir in [home.join("lib64"), home.join("lib")] {
        if lib_dir.is_dir() {
            link_search(&lib_dir);
        }
    }
    println!("cargo:rustc-link-lib=dylib=magicmind_runtime");
    println!("cargo:rustc-link-lib=dylib=cnrt");
    println!("cargo:rustc-cfg=neuware");
    Ok(())
}

/// `SWIN_MLU_CXX11_ABI`: unset or empty = the compiler's default, `0`/`1` = that ABI.
fn cxx11_abi(value: Option<&str>) -> Result<Option<&'static str>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("0") => Ok(Some("0")),
        Some("1") => Ok(Some("1")),
        Some(other) => Err(format!(
            "SWIN_MLU_CXX11_ABI={other:?}: use 0 or 1 (the _GLIBCXX_USE_CXX11_ABI of the MagicMind package), or leave it unset"
        )),
    }
}

fn link_search(dir: &Path) {
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
