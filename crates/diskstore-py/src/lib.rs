use pyo3::prelude::*;
#[pymodule]
fn _diskstore(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
